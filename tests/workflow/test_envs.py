"""Static checks of the conda environments (conda itself is not reachable from these machines): every
job rule names an env that exists, every env parses with channels and fully pinned packages, and the
pins agree with the pip pins in pyproject.toml that the tests run under (one source of versions).
That each env provides what its rules' jobs import is checked on real runs (tests/job_envs.py, called
by the workflow tests)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.job_envs import CONDA_NAMES, env_packages, rule_blocks, rule_env

REPO = Path(__file__).resolve().parents[2]
# Needed by the Snakemake process that runs the workflow, not inside a job's environment.
NOT_IN_JOB_ENVS = {"snakemake", "snakemake-executor-plugin-slurm"}
# Not pinned in pyproject.toml: the interpreter, its installer, and command-line tools from conda.
ENV_BASE = {"python", "pip", "plink", "bcftools", "htslib"}


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
    used = set()
    for name, (path, block) in blocks.items():
        if name == "all":  # no job of its own
            continue
        env = rule_env(block)
        assert env, f"rule {name} in {path.name} has no conda: directive"
        assert (path.parent / env).resolve().is_file(), f"rule {name}: env {env} missing"
        used.add((path.parent / env).resolve())
    # One env per step family, each used by some rule.
    assert used == {p.resolve() for p in env_files()}, "an env under envs/ is not used by any rule"
    assert len(used) >= 3


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_parses_and_pins_every_package(path):
    env = yaml.safe_load(path.read_text())
    assert env["name"] and env["channels"] and "defaults" not in env["channels"]
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep["pip"]:
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.+-]+", pip_dep), f"{path.name}: pip {pip_dep!r} unpinned"
        else:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+ =[\w.+-]+", dep), f"{path.name}: {dep!r} is not 'name =version'"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_pins_agree_with_pyproject(path):
    pins = {CONDA_NAMES.get(name, name): version for name, version in pyproject_pins().items()}
    for name, version in env_packages(path).items():
        if name in ENV_BASE:
            continue
        assert name in pins, f"{path.name} has {name}, which pyproject.toml does not pin (one source of versions)"
        assert version == pins[name], f"{path.name}: {name} {version} but pyproject.toml pins {pins[name]}"


def test_every_science_dependency_is_in_some_env():
    provided = set().union(*(env_packages(p) for p in env_files()))
    for name in pyproject_pins():
        if name not in NOT_IN_JOB_ENVS:
            assert CONDA_NAMES.get(name, name) in provided, f"no env under envs/ provides {name}"


def test_job_env_check_catches_a_missing_package(tmp_path):
    from tests.support.job_envs import assert_jobs_used_only_their_envs

    log = tmp_path / "logs/simulation/aggregate.log"
    log.parent.mkdir(parents=True)
    log.write_text("packages used: numpy==2.4.6, pandas==2.3.3\n")
    assert assert_jobs_used_only_their_envs(tmp_path) == 1
    log.write_text("packages used: numpy==2.4.6, torch==2.15.0\n")
    with pytest.raises(AssertionError, match="imported torch, which its env"):
        assert_jobs_used_only_their_envs(tmp_path)


# Command-line tools the package runs, by the module that runs them, and their conda package.
TOOLS = {"mixmil_workflow/genetics/vcf.py": "bcftools", "mixmil_workflow/genetics/plink.py": "plink"}


def test_every_binary_a_rule_runs_is_in_its_env_at_the_version_ci_runs():
    """A rule whose script reaches a module that runs bcftools or PLINK names an env with that tool; the
    env's bcftools is the version the CI machine runs (Debian's), so a test run checks what users get."""
    import shutil
    import subprocess

    from mixmil_workflow.workflow.code import package_modules

    src = REPO / "src"
    running = set()
    for name, (path, block) in rule_blocks().items():
        script = re.search(r'^\s+script:\s*\n\s+"([^"]+)"', block, re.M)
        if not script:
            continue
        modules = package_modules((path.parent / script.group(1)).resolve(), src)
        for module, tool in TOOLS.items():
            if module in modules:
                running.add((name, tool))
                env = env_packages((path.parent / rule_env(block)).resolve())
                assert tool in env, f"rule {name} runs {tool} ({module}) but its env {rule_env(block)} lacks it"
    assert {("variant_universe", "bcftools"), ("donor_dosages", "bcftools"), ("genetic_pcs", "plink")} <= running
    if shutil.which("bcftools"):
        version = subprocess.run(["bcftools", "--version"], capture_output=True, text=True).stdout.split()[1]
        assert env_packages(REPO / "envs/genetics.yaml")["bcftools"] == version
