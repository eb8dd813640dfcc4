"""Provenance of results: which config, seed, code and packages produced a table.

A result table carries three things a reader needs to reproduce it: the SHA-256 of the config sections
it depends on (canonical JSON, so key order and YAML formatting do not matter), the root seed, and the
code (workflow version, git commit when the workflow is a git checkout) with the versions of every
third-party package the job had imported. The config digest is computed when Snakemake builds the DAG
(it is a rule parameter, so changing those sections reruns the table); code and packages are read by the
job itself, when it writes the table.

No timestamp is written: the same config and code give byte-identical tables.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from mixmil_workflow import __version__

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/mixmil_workflow


def config_digest(sections: Mapping[str, Any]) -> str:
    """SHA-256 of the config sections as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(sections, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def config_provenance(sections: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The rule parameter a result table's job receives: digest of its config sections and the seed."""
    return {"config_sha256": config_digest({**sections, "seed": seed}), "sections": sorted(sections), "seed": seed}


@functools.cache
def workflow_revision() -> str:
    """``0.1.0 (git 43bd160)``, ``+ local changes`` when the checkout is modified; the version alone
    outside a git checkout (an installed package)."""
    repo = PACKAGE_ROOT.parents[1]
    if not (repo / ".git").exists():
        return __version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    if not commit:
        return __version__
    return f"{__version__} (git {commit}{' + local changes' if dirty else ''})"


def imported_packages(only: frozenset[str] | None = None) -> dict[str, str]:
    """Distribution name -> version of every third-party package imported in this process (``only``:
    restricted to these distributions, which saves looking up the rest)."""
    owners = metadata.packages_distributions()
    roots = {module.split(".")[0] for module in list(sys.modules)}
    roots -= set(sys.stdlib_module_names) | {"mixmil_workflow"}
    versions = {}
    for root in roots:
        # set: a site directory on sys.path twice (as in Snakemake's script jobs) lists a distribution twice
        dists = sorted(set(owners.get(root, [])))
        if len(dists) > 1:  # a namespace shared by several distributions (e.g. `testing`): says nothing
            continue
        for dist in dists:
            name = dist.lower()
            if name in versions or (only is not None and name not in only):
                continue
            try:
                versions[name] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(versions.items()))


# The distributions the science depends on (pyproject.toml's dependencies less Snakemake; a test keeps
# the two lists equal). Provenance reports these, not what Snakemake's script preamble or a package's
# own plumbing happened to import.
SCIENCE_DISTRIBUTIONS = frozenset(
    {
        "numpy",
        "scipy",
        "pandas",
        "scikit-learn",
        "statsmodels",
        "xgboost",
        "matplotlib",
        "tqdm",
        "pyyaml",
        "anndata",
        "h5py",
        "pyarrow",
        "tabulate",
        "torch",
        "scanpy",
        "numba",
        "scikit-misc",
        "scvi-tools",
        "torchvision",
        "timm",
        "scikit-image",
        "tifffile",
        "tiffslide",
    }
)


def science_packages() -> dict[str, str]:
    """Version of every science dependency this process has imported."""
    return imported_packages(only=SCIENCE_DISTRIBUTIONS)


def installed_science_packages() -> dict[str, str]:
    """Version of every science dependency installed in this environment (the job's environment)."""
    versions = {}
    for name in sorted(SCIENCE_DISTRIBUTIONS):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance_lines(provenance: Mapping[str, Any]) -> list[str]:
    """Human-readable lines: config digest and seed, code revision, versions of the environment's science
    packages (all of them, not only those imported so far, so every table of a job says the same); and
    the job's own ``note`` on what its inputs were, where it has one (e.g. which network weights)."""
    sections = ", ".join(provenance.get("sections", []))
    packages = ", ".join(f"{name} {version}" for name, version in installed_science_packages().items())
    lines = [
        f"config sha256 ({sections}, seed): {provenance['config_sha256']}; seed {provenance['seed']}",
        f"mixmil-workflow {workflow_revision()}; Python {sys.version.split()[0]}",
        f"packages: {packages}",
    ]
    return lines + ([str(provenance["note"])] if provenance.get("note") else [])


def provenance_footer(provenance: Mapping[str, Any]) -> str:
    """The Markdown footer of a result table."""
    return "\n\nProvenance:\n\n" + "".join(f"- {line}\n" for line in provenance_lines(provenance))


def header_provenance(path: str | Path) -> tuple[str, str]:
    """(config sha256, first 12 digits; code revision) read back from the ``#`` lines that
    :func:`provenance_lines` wrote at the top of a result table."""
    config = revision = ""
    with open(path) as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            if match := re.search(r"config sha256 \([^)]*\): ([0-9a-f]+)", line):
                config = match.group(1)[:12]
            if match := re.search(r"mixmil-workflow (.+?); Python", line):
                revision = match.group(1)
    return config, revision
