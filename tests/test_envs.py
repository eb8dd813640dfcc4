"""Static checks of the conda environments (conda itself is not reachable from these machines): every
job rule names an env that exists, every env parses with channels and fully pinned packages, and the
pins agree with the pip pins in pyproject.toml that the tests run under (one source of versions)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# conda-forge names of packages whose PyPI name differs.
CONDA_NAMES = {"xgboost": "py-xgboost", "matplotlib": "matplotlib-base"}
# Needed to run the workflow, not inside a job's environment.
NOT_IN_JOB_ENVS = {"snakemake"}


def rule_blocks() -> dict[str, tuple[Path, str]]:
    blocks = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text()
        starts = [(m.group(1), m.start()) for m in re.finditer(r"^rule (\w+):", text, re.M)]
        for k, (name, start) in enumerate(starts):
            end = starts[k + 1][1] if k + 1 < len(starts) else len(text)
            blocks[name] = (path, text[start:end])
    return blocks


def env_files() -> list[Path]:
    return sorted((REPO / "envs").glob("*.yaml"))


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", dep).groups()
        pins[name.lower()] = version
    return pins


def test_every_job_rule_names_an_existing_env():
    blocks = rule_blocks()
    assert len(blocks) > 20
    for name, (path, block) in blocks.items():
        if name == "all":  # no job of its own
            continue
        match = re.search(r'^\s+conda:\s*\n\s+"([^"]+)"', block, re.M)
        assert match, f"rule {name} in {path.name} has no conda: directive"
        assert (path.parent / match.group(1)).resolve().is_file(), f"rule {name}: env {match.group(1)} missing"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_parses_and_pins_every_package(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] and "defaults" not in env["channels"]
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep["pip"]:
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.+-]+", pip_dep), f"{path.name}: pip {pip_dep!r} unpinned"
        else:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+ =[\w.+-]+", dep), f"{path.name}: {dep!r} is not 'name =version'"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_pins_agree_with_pyproject(path):
    env = yaml.safe_load(path.read_text())
    versions = {}
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            name, version = re.split(r"\s*==?\s*", entry.replace(" =", "="), maxsplit=1)
            versions[name.lower()] = version
    for name, version in pyproject_pins().items():
        if name in NOT_IN_JOB_ENVS:
            continue
        conda_name = CONDA_NAMES.get(name, name)
        found = versions.get(conda_name, versions.get(name))
        assert found is not None, f"{path.name} lacks {conda_name} (pyproject pins {name}=={version})"
        assert found == version, f"{path.name}: {conda_name} {found} but pyproject.toml pins {version}"
