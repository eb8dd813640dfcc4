"""The Snakemake workflow: dry runs, lint, config validation and end-to-end runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    counts, in_table = {}, False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif in_table and parts and parts[0] == "total":
            break
    return counts


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_dry_run_plans_every_scenario_model_and_repeat(configfile, tmp_path):
    config = yaml.safe_load((REPO / configfile).read_text())
    sim = config["simulation"]
    defaults = sim["defaults"]
    n_scenarios = 1 + sum(v != defaults[axis] for axis, values in sim["axes"].items() for v in values)
    result = snakemake("-n", "--configfile", str(REPO / configfile), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    assert counts["simulate_data"] == n_scenarios * sim["n_repeats"]
    per_model = [len(config["models"][m].get("scenarios", [None] * n_scenarios)) for m in sim["models"]]
    assert counts["fit_simulation"] == sim["n_repeats"] * sum(per_model)
    assert counts["aggregate_simulation"] == 1 and counts["simulation_figures"] == 1


def test_workflow_lint_and_formatting():
    lint = snakemake("--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    paths = ["src", "scripts", "tests", "benchmarks"]
    ruff = subprocess.run([str(BIN / "ruff"), "check", *paths], cwd=REPO, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout
    ruff_fmt = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert ruff_fmt.returncode == 0, ruff_fmt.stdout


def test_invalid_config_is_rejected_naming_the_field(tmp_path):
    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["n_repeats"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "0 is less than the minimum of 1" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["models"].append("no_such_model")
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert "simulation.models lists 'no_such_model'" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["costs"]["models"].append("rf_mean")
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert "costs.models lists 'rf_mean' of type 'random_forest'" in result.stdout + result.stderr


def _check_outputs(workdir: Path, config: dict) -> pd.DataFrame:
    tables = workdir / "results" / "simulation" / "tables"
    figures = workdir / "results" / "simulation" / "figures"
    summary = pd.read_csv(tables / "simulation_summary.tsv", sep="\t")
    models = config["simulation"]["models"]
    assert set(summary["model"]) == set(models)
    no_instance_scores = [m for m in models if config["models"][m]["type"] in ("glmm", "random_forest", "xgboost")]
    has_scores = ~summary["model"].isin(no_instance_scores)
    assert summary.loc[has_scores, "instance_auc_mean"].notna().all()
    assert summary.loc[~has_scores, "instance_auc_mean"].isna().all()
    long = pd.read_csv(tables / "simulation_metrics.tsv", sep="\t")
    assert long["spearman"].between(-1, 1).all()
    for name in ("fig2_spearman", "fig2_instance_auc", "figE2_retrieval_mean_field", "figE1_traditional"):
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures / f"{name}.svg").stat().st_size > 1000
    assert "mixmil" in (tables / "default_scenario.md").read_text()
    for rule in ("simulate", "fit", "evaluate"):
        assert any((workdir / "logs" / "simulation" / rule).rglob("*.log")), f"no logs for {rule}"
    costs = pd.read_csv(workdir / "results" / "costs" / "table1_costs.tsv", sep="\t")
    assert list(costs["model"]) == config["costs"]["models"]
    assert (costs[["batch_ms_mean", "predict_ms_mean", "likelihood_parameters"]] > 0).all().all()
    assert "batch time (ms)" in (workdir / "results" / "costs" / "table1_costs.md").read_text()
    if config.get("sweep", {}).get("activate"):
        grid = pd.read_csv(workdir / "results" / "sweep" / "tables" / "sweep_grid.tsv", sep="\t")
        for model, values in config["sweep"]["grid"].items():
            rows = grid[grid["model"] == model]
            assert len(rows) == np.prod([len(v) for v in values.values()])
            assert rows["spearman_mean"].between(-1, 1).all()
        selected = yaml.safe_load((workdir / "results" / "sweep" / "selected_models.yaml").read_text())["models"]
        best = grid.loc[grid.groupby("model")["spearman_mean"].idxmax()]
        for row in best.itertuples():
            assert selected[row.model]["lr"] == row.lr
    return summary


def test_tiny_workflow_end_to_end_and_nothing_to_redo(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(tmp_path))
    summary = _check_outputs(tmp_path, config)
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
        "default_scenario.md",
        "table1_costs.md",
    ):
        assert name in html

    # Same config, fresh directory: bit-identical tables (determinism from the config seed).
    other = tmp_path / "again"
    other.mkdir()
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(other))
    for table in ("simulation_metrics.tsv", "simulation_summary.tsv"):
        first = pd.read_csv(tmp_path / "results/simulation/tables" / table, sep="\t")
        second = pd.read_csv(other / "results/simulation/tables" / table, sep="\t")
        cols = [c for c in first.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(first[cols], second[cols])


@pytest.mark.slow
def test_demo_configuration_end_to_end(tmp_path):
    """The README's `make run`: the embedded demo, end to end (about 12 minutes on 2 cores)."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    shutil.copytree(REPO / "config", tmp_path / "config")
    snakemake("--cores", "2", "--directory", str(tmp_path))
    summary = _check_outputs(tmp_path, config).set_index(["model", "scenario"])
    mixmil = summary.loc[("mixmil", "default"), "spearman_mean"]
    glmm = summary.loc[("glmm", "default"), "spearman_mean"]
    assert mixmil > glmm + 0.05, (mixmil, glmm)
    assert summary.loc[("mixmil", "default"), "instance_auc_mean"] > 0.8
    # Fig. 2 (a): MixMIL above every MIL baseline at every sample size the demo runs them.
    baselines = [m for m in config["simulation"]["models"] if config["models"][m]["type"] not in ("mixmil", "glmm")]
    for baseline in baselines:
        for scenario in config["models"][baseline].get("scenarios", ["default"]):
            mixmil_rho = summary.loc[("mixmil", scenario), "spearman_mean"]
            assert mixmil_rho > summary.loc[(baseline, scenario), "spearman_mean"], (baseline, scenario)
