"""Runs of small configurations: end to end, resumed after a kill, reruns of exactly what changed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from tests.support.job_envs import assert_jobs_used_only_their_envs
from tests.support.workflow import REPO, SNAKEMAKE, TINY, check_outputs, job_counts, snakemake


def test_tiny_workflow_end_to_end_and_nothing_to_redo(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(tmp_path))
    summary = check_outputs(tmp_path, config)
    assert assert_jobs_used_only_their_envs(tmp_path) > 20
    assert set(summary["scenario"]) == {"default", "v_gamma-2"}
    # A model restricted to some scenarios runs only there.
    assert set(summary.loc[summary["model"] == "xgboost_instance", "scenario"]) == {"default"}
    again = snakemake("-n", "--configfile", str(TINY), "--directory", str(tmp_path))
    assert "Nothing to be done" in again.stdout + again.stderr
    snakemake("--configfile", str(TINY), "--directory", str(tmp_path), "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    for name in (
        "fig2_spearman.png",
        "fig2_instance_auc.png",
        "figE2_retrieval_mean_field.png",
        "default_scenario.html",
        "table1_costs.html",
        "training_curves.png",
        "scorecard.html",
    ):
        assert name in html

    # Same config, fresh directory: bit-identical tables (determinism from the config seed).
    other = tmp_path / "again"
    other.mkdir()
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(other))
    for table in ("simulation_metrics.tsv", "simulation_summary.tsv"):
        first = pd.read_csv(tmp_path / "results/simulation/tables" / table, sep="\t", comment="#")
        second = pd.read_csv(other / "results/simulation/tables" / table, sep="\t", comment="#")
        cols = [c for c in first.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(first[cols], second[cols])


def test_a_run_killed_mid_training_resumes_to_identical_results(tmp_path):
    """Hard-kill the whole run (as a node failure would) while a training job runs, unlock, rerun: the
    tables equal those of an uninterrupted run, bit for bit (also the determinism check for datasets)."""
    import os
    import signal
    import time

    config = yaml.safe_load((REPO / "tests/configs/datasets_tiny.yaml").read_text())
    config["models"]["mixmil"]["n_epochs"] = 600  # several seconds per fold: the kill lands mid-training
    config["datasets"] = {
        "cv": {**config["datasets"]["cv"], "labels": {"dosage": {"likelihood": "binomial", "n_trials": 2}}}
    }
    config["datasets"]["cv"]["models"] = ["mixmil"]
    config["datasets"]["cv"]["protocol"] = {"kind": "kfold", "n_folds": 2}
    config["datasets"]["cv"]["fits_per_job"] = "fold"
    config["datasets"]["cv"].pop("tuning")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    snakemake("--cores", "1", "--configfile", str(path), "--directory", str(whole))

    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--cores", "1", "--configfile", str(path)]
    run = subprocess.Popen(
        [*command, "--directory", str(killed)], cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = killed / "logs/datasets/cv/fit/dosage/mixmil/r0f0.log"
    deadline = time.time() + 300
    while not (log.exists() and "trained" not in log.read_text() and log.stat().st_size > 0):
        assert time.time() < deadline and run.poll() is None, "the run ended before training started"
        time.sleep(0.1)
    time.sleep(1.0)  # inside the training loop
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert "trained" not in log.read_text()  # the job died inside fit()
    assert not (killed / "results/datasets/cv/predictions/dosage/mixmil/r0f0.tsv").exists()
    assert not list((killed / "results/datasets/cv/predictions/dosage/mixmil").glob("*.tmp"))  # no temp files
    snakemake("--unlock", "--configfile", str(path), "--directory", str(killed))
    snakemake("--cores", "1", "--configfile", str(path), "--directory", str(killed))
    # Identical runs give identical bytes: every result file but the wall times (kept apart for that).
    results = sorted(p.relative_to(whole) for p in (whole / "results").rglob("*") if p.is_file())
    assert results == sorted(p.relative_to(killed) for p in (killed / "results").rglob("*") if p.is_file())
    timed = [p for p in results if "timings" in str(p)]
    assert timed and len(timed) < len(results)
    for relative in set(results) - set(timed):
        first, second = (whole / relative).read_bytes(), (killed / relative).read_bytes()
        assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest(), relative


def test_reruns_touch_exactly_the_changed_stage_and_what_follows(tmp_path):
    """Change (1) a model parameter in the config, (2) one script's code or a package module it imports, (3)
    one input file: a dry run plans exactly that stage and its downstream jobs, nothing upstream."""
    import os

    workflow = tmp_path / "workflow"
    workflow.mkdir()
    for part in ("Snakefile", "rules", "scripts", "report", "config", "envs", "src", "profiles"):
        source = REPO / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, workflow / part)
    config = yaml.safe_load((REPO / "tests/configs/datasets_tiny.yaml").read_text())
    config["datasets"] = {"cv": {**config["datasets"]["cv"], "models": ["glmm", "abmil"]}}
    config["datasets"]["cv"]["labels"] = {"disease": {"likelihood": "bernoulli"}}
    config["datasets"]["cv"]["protocol"] = {"kind": "kfold", "n_folds": 2}
    config["datasets"]["cv"].pop("tuning")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"

    def planned(config_path: Path = path) -> dict[str, int]:
        result = subprocess.run(
            [SNAKEMAKE, "--snakefile", str(workflow / "Snakefile"), "-n", "--configfile", str(config_path),
             "--directory", str(run)],
            cwd=workflow, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return {k: v for k, v in job_counts(result.stdout + result.stderr).items() if k != "all"}

    subprocess.run(
        [SNAKEMAKE, "--snakefile", str(workflow / "Snakefile"), "--cores", "2", "--configfile", str(path),
         "--directory", str(run)],
        cwd=workflow, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert planned() == {}

    # (1) A training parameter of one model: its fits and the comparison, not the data preparation.
    changed = yaml.safe_load(path.read_text())
    changed["models"]["abmil"]["n_epochs"] = 3
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert planned(tmp_path / "changed.yaml") == {"fit_dataset": 1, "compare_dataset": 1, "dataset_training_curves": 1}

    # (1b) Adding a model to the dataset: its fits and the comparison, none of the other models' fits.
    added = yaml.safe_load(path.read_text())
    added["models"]["gated"] = {"type": "gated_abmil", "n_epochs": 2, "hidden_dim": 8}
    added["datasets"]["cv"]["models"].append("gated")
    (tmp_path / "added.yaml").write_text(yaml.safe_dump(added))
    assert planned(tmp_path / "added.yaml") == {"fit_dataset": 1, "compare_dataset": 1, "dataset_training_curves": 1}

    # (1c) Preprocessing: every fit that uses it and the comparison, not the data preparation.
    scaled = yaml.safe_load(path.read_text())
    scaled["datasets"]["cv"]["preprocessing"] = {"standardize": True}
    (tmp_path / "scaled.yaml").write_text(yaml.safe_dump(scaled))
    assert planned(tmp_path / "scaled.yaml") == {"fit_dataset": 2, "compare_dataset": 1, "dataset_training_curves": 1}

    # (2) The code of one script: that rule only (it is the last stage).
    script = workflow / "scripts/datasets/compare.py"
    original, times = script.read_text(), script.stat()
    script.write_text(original + "\n# a changed line\n")
    assert planned() == {"compare_dataset": 1}
    script.write_text(original)
    os.utime(script, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert planned() == {}

    # (2b) A package module: exactly the rules whose scripts import it (here the example-data generator, so
    # its rule and everything after it) ...
    module = workflow / "src/mixmil_workflow/own_bags/example.py"
    original = module.read_text()
    module.write_text(original + "\n# a changed line\n")
    after_fits = {"fit_dataset": 2, "compare_dataset": 1, "dataset_training_curves": 1}
    assert planned() == {"example_dataset": 1, "prepare_dataset": 1, **after_fits}
    module.write_text(original)
    assert planned() == {}
    # ... and a module no rule of this configuration runs: nothing.
    unused = workflow / "src/mixmil_workflow/camelyon16/slides/tiling.py"
    unused.write_text(unused.read_text() + "\n# a changed line\n")
    assert planned() == {}

    # (3) One input file: everything from the stage that reads it, nothing before it.
    table = run / "resources/example_dataset/bags.tsv"
    table.write_text(table.read_text().replace("\t0\t", "\t1\t", 1))
    plan = planned()
    assert plan == {"prepare_dataset": 1, **after_fits}
    assert "example_dataset" not in plan
