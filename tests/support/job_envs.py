"""Which conda env each rule names, and a check that the jobs of a finished run imported only packages
their env provides (conda is not reachable here, so the envs are checked against what the jobs really
imported: every job logs ``packages used: ...``, see mixmil_workflow.io.log_to)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# conda-forge names of packages whose PyPI name differs.
CONDA_NAMES = {"xgboost": "py-xgboost", "matplotlib": "matplotlib-base"}
# Optional backends another package imports when they happen to be installed (the pip route installs
# everything in one environment); an env without them works: pandas runs without pyarrow.
INCIDENTAL = {"pyarrow"}


def rule_blocks() -> dict[str, tuple[Path, str]]:
    blocks = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text()
        starts = [(m.group(1), m.start()) for m in re.finditer(r"^rule (\w+):", text, re.M)]
        for k, (name, start) in enumerate(starts):
            end = starts[k + 1][1] if k + 1 < len(starts) else len(text)
            blocks[name] = (path, text[start:end])
    return blocks


def rule_env(block: str) -> str | None:
    match = re.search(r'^\s+conda:\s*\n\s+"([^"]+)"', block, re.M)
    return match.group(1) if match else None


def env_packages(path: Path) -> dict[str, str]:
    """Package name -> pinned version (conda and pip entries)."""
    versions = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        for entry in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, version = re.split(r"\s*==?\s*", entry.replace(" =", "="), maxsplit=1)
            versions[name.lower()] = version
    return versions


def _log_regex(block: str) -> re.Pattern | None:
    match = re.search(r'^\s+log:\s*\n\s+"([^"]+)"', block, re.M)
    if not match:
        return None
    pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(match.group(1)))
    return re.compile(pattern + "$")


def assert_jobs_used_only_their_envs(workdir: Path) -> int:
    """For every job log of a finished run: the packages the job imported are all in its rule's env.
    Returns how many job logs were checked."""
    rules = []
    for name, (path, block) in rule_blocks().items():
        env, regex = rule_env(block), _log_regex(block)
        if env and regex:
            rules.append((name, regex, env_packages((path.parent / env).resolve()), env))
    checked = 0
    for log in sorted((workdir / "logs").rglob("*.log")):
        relative = log.relative_to(workdir).as_posix()
        owners = [r for r in rules if r[1].fullmatch(relative)]
        assert len(owners) == 1, f"{relative}: matched by rules {[o[0] for o in owners]}"
        rule, _, provided, env = owners[0]
        used = re.search(r"^packages used: (.*)$", log.read_text(), re.M)
        assert used, f"{relative} (rule {rule}) does not record the packages it used"
        for item in filter(None, used.group(1).split(", ")):
            package = item.split("==")[0].lower()
            if package in INCIDENTAL:
                continue
            assert CONDA_NAMES.get(package, package) in provided or package in provided, (
                f"rule {rule} imported {package}, which its env {env} does not provide"
            )
        checked += 1
    return checked
