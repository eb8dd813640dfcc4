"""Helpers of the workflow tests: run Snakemake on this checkout, read its job table, check outputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
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
        elif in_table and parts and parts[0] == "total":
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def check_outputs(workdir: Path, config: dict) -> pd.DataFrame:
    tables = workdir / "results" / "simulation" / "tables"
    figures = workdir / "results" / "simulation" / "figures"
    summary = pd.read_csv(tables / "simulation_summary.tsv", sep="\t", comment="#")
    models = config["simulation"]["models"]
    assert set(summary["model"]) == set(models)
    no_instance_scores = [m for m in models if config["models"][m]["type"] in ("glmm", "random_forest", "xgboost")]
    has_scores = ~summary["model"].isin(no_instance_scores)
    assert summary.loc[has_scores, "instance_auc_mean"].notna().all()
    assert summary.loc[~has_scores, "instance_auc_mean"].isna().all()
    long = pd.read_csv(tables / "simulation_metrics.tsv", sep="\t", comment="#")
    assert long["spearman"].between(-1, 1).all()
    for name in ("fig2_spearman", "fig2_instance_auc", "figE2_retrieval_mean_field", "figE1_traditional"):
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures / f"{name}.svg").stat().st_size > 1000
    assert "mixmil" in (tables / "default_scenario.md").read_text()
    # Every other model against MixMIL on the same outputs, recomputed from the long table.
    from mixmil_workflow.studies.simulation import paired_table

    paired = pd.read_csv(tables / "simulation_paired.tsv", sep="\t", comment="#")
    assert set(paired["model"]) == set(models) - {"mixmil"}
    expected = paired_table(long, "mixmil").round(4)
    pd.testing.assert_frame_equal(paired, expected, check_dtype=False)
    assert "mixmil − model" in (tables / "simulation_paired.md").read_text()
    # The trees' hyperparameters per run and output (fixed by overrides here: the choice is those values).
    chosen = pd.read_csv(tables / "simulation_hyperparameters.tsv", sep="\t", comment="#")
    trees = [m for m in models if config["models"][m]["type"] in ("random_forest", "xgboost")]
    tree_runs = long[long["model"].isin(trees)][["model", "scenario", "repeat", "output"]]
    assert sorted(map(tuple, chosen[tree_runs.columns].to_numpy())) == sorted(map(tuple, tree_runs.to_numpy()))
    for model in trees:
        for name, value in config["models"][model].get("overrides", {}).items():
            assert (chosen.loc[chosen["model"] == model, name] == value).all(), (model, name)
    # Provenance: the same digest of the simulation's config sections on every simulation table, the seed,
    # the code revision and package versions; another digest (other sections) on the costs table.
    digests = set()
    for name in (
        "default_scenario.md",
        "simulation_summary.md",
        "simulation_summary.tsv",
        "simulation_axes.tsv",
        "simulation_paired.tsv",
    ):
        text = (tables / name).read_text()
        found = re.search(r"config sha256 \(models, simulation, seed\): ([0-9a-f]{64}); seed (\d+)", text)
        assert found and int(found.group(2)) == config["seed"], name
        assert "mixmil-workflow " in text and f"numpy {np.__version__}" in text, name
        digests.add(found.group(1))
    assert len(digests) == 1
    costs_text = (workdir / "results" / "costs" / "table1_costs.md").read_text()
    assert re.search(r"config sha256 \(costs, models, simulation, seed\): [0-9a-f]{64}", costs_text)
    for rule in ("simulate", "fit"):
        assert any((workdir / "logs" / "simulation" / rule).rglob("*.log")), f"no logs for {rule}"
    aggregate_log = (workdir / "logs" / "simulation" / "aggregate.log").read_text()
    n_datasets = len(long.groupby(["scenario", "repeat"]))
    assert f"{n_datasets}/{n_datasets} datasets" in aggregate_log  # every run evaluated in the aggregation
    costs = pd.read_csv(workdir / "results" / "costs" / "table1_costs.tsv", sep="\t", comment="#")
    assert list(costs["model"]) == config["costs"]["models"]
    assert (costs[["batch_ms_mean", "predict_ms_mean", "likelihood_parameters"]] > 0).all().all()
    assert "batch time (ms)" in (workdir / "results" / "costs" / "table1_costs.md").read_text()
    if config.get("sweep", {}).get("activate"):
        grid = pd.read_csv(workdir / "results" / "sweep" / "tables" / "sweep_grid.tsv", sep="\t", comment="#")
        for model, values in config["sweep"]["grid"].items():
            rows = grid[grid["model"] == model]
            assert len(rows) == np.prod([len(v) for v in values.values()])
            assert rows["spearman_mean"].between(-1, 1).all()
        metrics = pd.read_csv(workdir / "results/sweep/tables/sweep_metrics.tsv", sep="\t", comment="#")
        assert list(metrics.columns[:4]) == ["model", "combination", "repeat", "output"]
        per_combination = metrics.groupby(["model", "combination", "repeat"])["spearman"].mean().groupby(level=[0, 1])
        np.testing.assert_allclose(grid["spearman_mean"], per_combination.mean().to_numpy(), atol=1e-4)
        selected = yaml.safe_load((workdir / "results" / "sweep" / "selected_models.yaml").read_text())["models"]
        best = grid.loc[grid.groupby("model")["spearman_mean"].idxmax()]
        for row in best.itertuples():
            assert selected[row.model]["lr"] == row.lr
        if config.get("save_models", {}).get("sweep"):  # one kept model per grid point and repeat
            kept = sorted((workdir / "results" / "sweep" / "models").rglob("*.pt"))
            assert len(kept) == len(metrics.groupby(["model", "combination", "repeat"])), kept
    return summary
