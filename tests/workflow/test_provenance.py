"""Provenance of result tables: config digest, seed, code revision and package versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow import __version__
from mixmil_workflow.io import read_table, save_table
from mixmil_workflow.workflow.provenance import (
    SCIENCE_DISTRIBUTIONS,
    config_digest,
    config_provenance,
    provenance_lines,
    workflow_revision,
)

REPO = Path(__file__).resolve().parents[2]


def test_config_digest_ignores_key_order_and_follows_values():
    a = {"simulation": {"n_repeats": 3, "defaults": {"n_train": 10, "v_gamma": 0.5}}, "models": {"m": {"lr": 1e-3}}}
    b = {"models": {"m": {"lr": 1e-3}}, "simulation": {"defaults": {"v_gamma": 0.5, "n_train": 10}, "n_repeats": 3}}
    assert config_digest(a) == config_digest(b)
    assert re.fullmatch(r"[0-9a-f]{64}", config_digest(a))
    b["models"]["m"]["lr"] = 2e-3
    assert config_digest(a) != config_digest(b)
    assert config_provenance(a, 1)["config_sha256"] != config_provenance(a, 2)["config_sha256"]


def test_tables_carry_provenance_and_read_back_unchanged(tmp_path):
    provenance = config_provenance({"simulation": {"n_repeats": 2}}, 7)
    table = pd.DataFrame({"model": ["mixmil", "glmm"], "spearman": [0.81, 0.58]})
    save_table(tmp_path / "t.tsv", table, provenance=provenance)
    save_table(tmp_path / "t.md", table, provenance=provenance)
    head = (tmp_path / "t.tsv").read_text().splitlines()[:3]
    assert all(line.startswith("# ") for line in head)
    assert f"{provenance['config_sha256']}; seed 7" in head[0]
    assert __version__ in head[1]
    assert f"numpy {np.__version__}" in head[2] and f"pandas {pd.__version__}" in head[2]
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.tsv"), table)
    md = (tmp_path / "t.md").read_text()
    assert md.startswith("| model") and "Provenance:" in md and provenance["config_sha256"] in md
    # Same inputs, same bytes: no timestamps.
    save_table(tmp_path / "again.tsv", table, provenance=provenance)
    assert (tmp_path / "again.tsv").read_bytes() == (tmp_path / "t.tsv").read_bytes()
    # Intermediate tables stay plain.
    save_table(tmp_path / "plain.tsv", table)
    assert (tmp_path / "plain.tsv").read_text().startswith("model\t")


def test_revision_names_the_commit_in_a_checkout():
    revision = workflow_revision()
    assert revision.startswith(__version__)
    if (REPO / ".git").exists():
        assert re.search(r"\(git [0-9a-f]{7,}", revision), revision


def test_reported_packages_are_exactly_the_declared_science_dependencies():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in deps}
    assert SCIENCE_DISTRIBUTIONS == {n for n in names if not n.startswith("snakemake")}
    assert "packages: " in provenance_lines(config_provenance({}, 0))[2]


def test_a_distribution_listed_twice_still_counts(monkeypatch):
    """Snakemake's script jobs see the site directory twice on sys.path, so packages_distributions()
    names torch's distribution several times; that is one distribution, not a shared namespace."""
    from importlib import metadata

    from mixmil_workflow.workflow import provenance

    real = metadata.packages_distributions()
    doubled = {k: v * 2 for k, v in real.items()}
    monkeypatch.setattr(provenance.metadata, "packages_distributions", lambda: doubled)
    assert provenance.imported_packages(only=frozenset({"numpy"})) == {"numpy": np.__version__}
