"""The SLURM profile on a real single-node cluster (munge + slurmctld + slurmd from Debian, 127.0.0.1).

The shipped ``profiles/slurm`` is used as is; the command line adds only what this test cluster lacks
(accounts), as the profile's comments tell users to do, and a shorter wait before the first poll.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.slurm_cluster import missing_requirements, slurm_cluster

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CONFIG = REPO / "tests" / "configs" / "slurm.yaml"


def test_slurm_profile_is_valid_and_chooses_partitions_by_resources():
    """Partitions are chosen per job from its resources (the plugin's partition selection, partitions.yaml):
    no rule is pinned to a partition, so a CPU-only model's training job cannot land on the GPU partition."""
    profile_dir = REPO / "profiles" / "slurm"
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # a failed job (killed for time or memory) is resubmitted once, with the rules' attempt-scaled resources,
    # and one failure does not stop the others
    assert profile["retries"] >= 1 and profile["keep-going"] is True
    rules_text = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    fixed = re.findall(r"^\s+(?:runtime|mem_mb)=\d+,$", rules_text, flags=re.M)
    assert not fixed, f"resources that do not grow on a retry: {fixed}"
    assert "default-resources" not in yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert (profile_dir / profile["slurm-partition-config"]).is_file()
    pinned = [rule for rule, res in profile.get("set-resources", {}).items() if "slurm_partition" in res]
    assert not pinned and "slurm_partition" not in profile["default-resources"], pinned
    partitions = yaml.safe_load((profile_dir / profile["slurm-partition-config"]).read_text())["partitions"]
    assert any(limits.get("max_gpu", 0) == 0 for limits in partitions.values()), partitions
    assert any(limits.get("max_gpu", 0) > 0 for limits in partitions.values()), partitions
    rules_text = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    # gpu=1, or per model (model_gpus, from the registry: 1 for the torch models, 0 for the GLMM and trees).
    gpu_rules = set(re.findall(r"^rule (\w+):(?:(?!^rule ).)*?gpu=(?:1|lambda)", rules_text, flags=re.M | re.S))
    assert gpu_rules, "no GPU rule found"


@pytest.mark.slow
@pytest.mark.skipif(missing_requirements() is not None, reason=str(missing_requirements()))
def test_workflow_runs_through_the_slurm_profile_on_a_real_cluster(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    with slurm_cluster(tmp_path / "cluster") as env:
        result = subprocess.run(
            [
                SNAKEMAKE,
                "--snakefile",
                str(REPO / "Snakefile"),
                "--profile",
                str(REPO / "profiles" / "slurm"),
                "--configfile",
                str(CONFIG),
                "--directory",
                str(workdir),
                # What this cluster lacks (accounts), plus a quick first status poll:
                "--slurm-no-account",
                "--slurm-init-seconds-before-status-checks",
                "5",
                "--slurm-keep-successful-logs",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        jobs = subprocess.run(
            ["scontrol", "show", "job", "--oneliner"], env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        # A profile naming a partition this cluster lacks stops the run before any submission, naming the
        # profile key and the partitions the cluster has.
        bad = tmp_path / "partitions.yaml"
        bad.write_text("partitions:\n  cpu: {max_gpu: 0}\n  gpux: {max_gpu: 8}\n")
        refused = subprocess.run(
            [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles" / "slurm"),
             "--configfile", str(CONFIG), "--directory", str(workdir), "--slurm-no-account",
             "--slurm-partition-config", str(bad), "--forcerun", "aggregate_simulation"],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        after = subprocess.run(
            ["scontrol", "show", "job", "--oneliner"], env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    message = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "slurm-partition-config" in message and "partitions.gpux" in message, message
    assert "sinfo lists cpu, gpu" in message and len(after) == len(jobs), message

    # Every heavy job went through sbatch; the light rules ran locally. Small jobs went as groups (the
    # profile's group-components): the scenario's data in simulation_data, MixMIL's and the GLMM's fits in
    # the GPU and the CPU group; the slow model (an explicit runtime) alone.
    submissions: dict[str, list[str]] = {}
    for line in jobs:
        comment = re.search(r"Comment=rule_(\S+)", line)
        if comment:
            submissions.setdefault(comment.group(1), []).append(line)
    names = {
        "data": "simulation_data_simulate_data",
        "mixmil": "simulation_fits_gpu_fit_simulation",
        "glmm": "simulation_fits_cpu_fit_simulation",
        "aggregate": "aggregate_simulation",
    }
    by_kind = {kind: submissions.get(name, []) for kind, name in names.items()}
    by_kind["slow"] = [lines for name, lines in submissions.items() if "mixmil_slow" in name]
    by_kind["slow"] = by_kind["slow"][0] if len(by_kind["slow"]) == 1 else by_kind["slow"]
    assert sum(map(len, submissions.values())) == 6, sorted(submissions)  # 4 submissions + the slow fit twice
    assert all(len(by_kind[k]) == 1 for k in names), {k: len(v) for k, v in by_kind.items()}
    fits = {kind: by_kind[kind][0] for kind in ("mixmil", "glmm")}
    assert all("JobState=COMPLETED" in line for kind in names for line in by_kind[kind])
    # Partitions chosen by the jobs' resources: MixMIL's fit asked for and got the cluster's GPU on the GPU
    # partition; the GLMM's (a CPU-only model, as the registry says) asked for none and ran on the CPU partition.
    assert all("Partition=cpu" in line for line in [*by_kind["data"], *by_kind["aggregate"]])
    assert "Partition=gpu" in fits["mixmil"] and "Partition=cpu" in fits["glmm"], fits
    assert re.search(r"TresPerJob=\S*gres[:/]gpu[:=]1", fits["mixmil"]), fits["mixmil"]
    assert not any("gres" in line and "gpu" in line for line in [*by_kind["data"], fits["glmm"]])
    # CPUs: a model's `threads` key (the GLMM's 2), else one.
    cpus = {model: re.search(r"NumCPUs=(\d+)", line).group(1) for model, line in fits.items()}
    assert cpus == {"mixmil": "1", "glmm": "2"}, cpus
    # Memory and runtime from the rule's cost model (workflow/resources.py), not from the profile's defaults:
    # each fit's time limit is what its model and scenario ask for (at least the cost model's floor).
    from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, scenario_grid
    from mixmil_workflow.workflow.resources import FLOOR_MINUTES, MEMORY_BASE_MB, Scaling, simulation_fit_runtime

    config = yaml.safe_load(CONFIG.read_text())
    grid = scenario_grid({**config["simulation"], "axes": {}})
    scaling = Scaling.from_config(config["resources"])
    for model, line in fits.items():
        spec = config["models"][model]
        minutes = simulation_fit_runtime(
            spec, grid[DEFAULT_SCENARIO], grid[DEFAULT_SCENARIO], 1, spec.get("threads", 1), scaling=scaling
        )
        assert minutes >= FLOOR_MINUTES and f"TimeLimit={_limit(minutes)}" in line, (minutes, line)
        assert int(re.search(r"MinMemoryNode=(\d+)M", line).group(1)) >= MEMORY_BASE_MB, line
    # The slow fit asked for its model's runtime (1 minute), was killed by SLURM at that limit, and the
    # profile's retry resubmitted it with retry_factor (20) times as much, which it finished in.
    first, second = sorted(by_kind["slow"], key=lambda line: int(re.search(r"JobId=(\d+)", line).group(1)))
    assert "JobState=TIMEOUT" in first and f"TimeLimit={_limit(1)}" in first, first
    assert "JobState=COMPLETED" in second and f"TimeLimit={_limit(20)}" in second, second
    assert "Partition=gpu" in first and "Partition=gpu" in second
    # slurmd set CUDA_VISIBLE_DEVICES for the GPU job; with no usable CUDA device the fit fell back to the CPU.
    fit_log = (workdir / "logs/simulation/fit/mixmil/default.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0" in fit_log and "-> cpu" in fit_log, fit_log
    summary = pd.read_csv(workdir / "results/simulation/tables/simulation_summary.tsv", sep="\t", comment="#")
    assert set(summary["model"]) == {"mixmil", "glmm", "mixmil_slow"}
    assert (workdir / "results/simulation/figures/fig2_spearman.png").stat().st_size > 0


def _limit(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours:02d}:{rest:02d}:00"
