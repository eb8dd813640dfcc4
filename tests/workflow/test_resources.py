"""The cost model of the training jobs' runtime and memory (what a cluster's scheduler is asked for)."""

from __future__ import annotations

import re

import pytest
import yaml

from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, scenario_grid
from mixmil_workflow.workflow import resources
from mixmil_workflow.workflow.resources import job_memory_mb, recorded_fits, simulation_fit_runtime
from tests.support.workflow import REPO, job_counts, snakemake

PAPER = yaml.safe_load((REPO / "config/paper.yaml").read_text())
GRID = scenario_grid(PAPER["simulation"])
DEFAULT = GRID[DEFAULT_SCENARIO]


def runtime(name, scenario=DEFAULT_SCENARIO, attempt=1, **changes):
    spec = {**PAPER["models"][name], **changes}
    return simulation_fit_runtime(spec, GRID[scenario], DEFAULT, PAPER["simulation"]["n_outputs"],
                                  spec.get("threads", 1), attempt)  # fmt: skip


def test_runtime_follows_the_recorded_cost_the_size_and_the_training_length():
    assert len(recorded_fits()) >= 10  # every (type, variant) of the paper's grid has a recorded fit
    xgb = recorded_fits()[("xgboost", "moments")]
    expected = resources.SAFETY * xgb["seconds"] / 60 / PAPER["models"]["xgboost_moments"].get("threads", 1)
    assert runtime("xgboost_moments") == pytest.approx(expected, abs=1)
    # minutes of GLMM ask for the floor, hours of XGBoost search for hours
    assert runtime("glmm") == resources.FLOOR_MINUTES < 60 < runtime("xgboost_moments")
    # 4x the training bags: 4x the time of the models that see one row per bag
    big = next(
        s
        for s, p in GRID.items()
        if p["n_train"] == 4 * DEFAULT["n_train"] and p["n_instances"] == DEFAULT["n_instances"]
    )
    assert runtime("xgboost_moments", big) == pytest.approx(4 * runtime("xgboost_moments"), rel=0.01)
    # half the epochs, half the time (above the floor); a search of half the size, half the time
    assert runtime("bayes_mil", big, n_epochs=PAPER["models"]["bayes_mil"].get("n_epochs", 100) // 2) == pytest.approx(
        runtime("bayes_mil", big) / 2, rel=0.05)  # fmt: skip
    assert runtime("rf_moments", n_iter=10) == pytest.approx(runtime("rf_moments") / 2, rel=0.05)
    # a retry asks for twice as much
    assert runtime("xgboost_moments", attempt=2) == 2 * runtime("xgboost_moments")
    assert job_memory_mb(100, attempt=2) == 2 * job_memory_mb(100)


def test_a_type_without_a_recorded_fit_asks_for_the_unrecorded_default():
    spec = {"type": "additive_mil"}  # not in the paper's simulation grid
    assert simulation_fit_runtime(spec, DEFAULT, DEFAULT, 10, 1) == resources.UNRECORDED_MINUTES


def test_the_paper_configuration_plans_runtimes_from_the_cost_model(tmp_path):
    """A dry run of config/paper.yaml: no fit asks for the same two hours any more; CPU-only models' fits
    ask for no GPU."""
    result = snakemake("-n", "--configfile", str(REPO / "config/paper.yaml"), "--directory", str(tmp_path))
    out = result.stdout + result.stderr
    repeats = PAPER["simulation"]["n_repeats"]
    assert job_counts(out)["fit_simulation"] < 300  # one job per model and scenario fits its repeats
    fits = re.findall(r"wildcards: model=(\w+), scenario=([\w.-]+)\n(?:\s+threads: \d+\n)?\s+resources: ([^\n]+)", out)
    runtimes = {(m, s): int(re.search(r"runtime=(\d+)", r).group(1)) for m, s, r in fits}
    assert len(runtimes) == job_counts(out)["fit_simulation"]
    assert runtimes[("glmm", DEFAULT_SCENARIO)] == repeats * resources.FLOOR_MINUTES
    big = max(GRID, key=lambda s: GRID[s]["n_train"])
    assert runtimes[("xgboost_moments", big)] > repeats * 10 * 60  # hours per fit, where 120 min killed it
    gpus = {m: re.search(r"gpu=(\d)", r).group(1) for m, _, r in fits}
    assert gpus["xgboost_moments"] == gpus["glmm"] == "0" and gpus["mixmil"] == "1"
