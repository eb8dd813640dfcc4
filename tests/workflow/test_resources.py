"""The cost model of the training jobs' runtime and memory (what a cluster's scheduler is asked for)."""

from __future__ import annotations

import re

import pytest
import yaml

from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, scenario_grid
from mixmil_workflow.workflow import resources
from mixmil_workflow.workflow.resources import Scaling, fit_group, job_memory_mb, recorded_fits, simulation_fit_runtime
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
    # twice the epochs, twice the time (both above the floor, which a faster fit could otherwise reach); a
    # search of half the size, half the time
    epochs = PAPER["models"]["bayes_mil"].get("n_epochs", 100)
    assert runtime("bayes_mil", big) > resources.FLOOR_MINUTES
    assert runtime("bayes_mil", big, n_epochs=2 * epochs) == pytest.approx(2 * runtime("bayes_mil", big), rel=0.05)
    assert runtime("rf_moments", n_iter=10) == pytest.approx(runtime("rf_moments") / 2, rel=0.05)
    # a retry asks for twice as much
    assert runtime("xgboost_moments", attempt=2) == 2 * runtime("xgboost_moments")
    assert job_memory_mb(100, attempt=2) == 2 * job_memory_mb(100)


def test_the_config_scales_estimates_floors_retries_and_groups():
    spec, default, outputs = PAPER["models"]["xgboost_moments"], DEFAULT, PAPER["simulation"]["n_outputs"]
    base = simulation_fit_runtime(spec, default, default, outputs, 1)
    slower = Scaling(runtime_scale=2.0, retry_factor=3.0)
    assert simulation_fit_runtime(spec, default, default, outputs, 1, scaling=slower) == pytest.approx(2 * base, abs=1)
    assert simulation_fit_runtime(spec, default, default, outputs, 1, attempt=2, scaling=slower) == pytest.approx(
        6 * base, abs=3)  # fmt: skip
    # the floor is the job's: ten fits of a few seconds ask for the floor once, not ten times
    glmm = PAPER["models"]["glmm"]
    assert simulation_fit_runtime(glmm, default, default, outputs, 2, n_fits=10) == resources.FLOOR_MINUTES
    assert simulation_fit_runtime(glmm, default, default, outputs, 2, scaling=Scaling(runtime_floor_minutes=5)) == 5
    # a model entry's runtime replaces the estimate; a retry still multiplies it
    assert simulation_fit_runtime({**spec, "runtime": 7}, default, default, outputs, 1) == 7
    assert simulation_fit_runtime({**spec, "runtime": 7}, default, default, outputs, 1, attempt=2, scaling=slower) == 21
    assert Scaling().memory(1000, attempt=3) == 4000 and Scaling(retry_factor=1.5).runtime(60, 2) == 90
    assert Scaling(retry_factor=10).memory(1000, attempt=2) == 2000  # memory has its own factor
    # small fits join the group of their device; large ones, and those with their own runtime, go alone
    limit = Scaling().group_fits_under_minutes
    assert fit_group(glmm, limit - 1, 0) == "simulation_fits_cpu"
    assert fit_group(PAPER["models"]["mixmil"], limit - 1, 1) == "simulation_fits_gpu"
    assert fit_group(spec, limit, 0) is None and fit_group({**glmm, "runtime": 5}, 5, 0) is None
    assert fit_group(glmm, 1, 0, Scaling(group_fits_under_minutes=0)) is None


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
    assert runtimes[("glmm", DEFAULT_SCENARIO)] == resources.FLOOR_MINUTES  # ten fits of seconds: one floor
    big = max(GRID, key=lambda s: GRID[s]["n_train"])
    assert runtimes[("xgboost_moments", big)] > repeats * 10 * 60  # hours per fit, where 120 min killed it
    assert runtimes[("xgboost_moments", big)] == pytest.approx(repeats * runtime("xgboost_moments", big), abs=repeats)
    gpus = {m: re.search(r"gpu=(\d)", r).group(1) for m, _, r in fits}
    assert gpus["xgboost_moments"] == gpus["glmm"] == "0" and gpus["mixmil"] == "1"


def test_the_cluster_profile_groups_small_jobs_and_names_every_group(tmp_path):
    """config/paper.yaml through profiles/slurm: a few hundred submissions, every group of the profile's
    group-components used by the workflow, no small fit submitted alone, no CPU fit in a GPU group."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    components = dict(item.split("=") for item in profile["group-components"])
    result = snakemake("-n", "--profile", str(REPO / "profiles/slurm"), "--slurm-no-account", "--configfile",
                       str(REPO / "config/paper.yaml"), "--directory", str(tmp_path))  # fmt: skip
    out = result.stdout
    groups = re.split(r"\n(?=\[[^\]]+\] Group job )", out)
    seen = {}
    for block in groups[1:]:
        name = re.match(r"\[[^\]]+\] Group job (\w+)", block).group(1)
        body = block.split("\n\n[", 1)[0] if name != "bbbc021_plate" else block
        seen.setdefault(name, 0)
        seen[name] += 1
        if name.startswith("simulation_fits"):
            gpus = set(re.findall(r"gpu=(\d)", body))
            assert gpus == ({"1"} if name.endswith("gpu") else {"0"}), (name, gpus)
    # the profile's groups, and the per-plate BBBC021 chains (one group per plate: no component count)
    assert set(seen) == set(components) | {"bbbc021_plate"}, (seen, components)
    local = set(
        re.findall(r"^    (\w+),$", (REPO / "Snakefile").read_text().split("localrules:")[1].split("\n\n")[0], re.M)
    )
    singles = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: ([^\n]+)", out, re.M)
    alone = [(rule, res) for rule, res in singles if rule not in local]
    assert len(alone) + sum(seen.values()) < 400, (len(alone), seen)
    # what goes alone is long: no simulation fit under the grouping threshold
    short = [res for rule, res in alone if rule == "fit_simulation"
             and int(re.search(r"runtime=(\d+)", res).group(1)) < Scaling().group_fits_under_minutes]  # fmt: skip
    assert not short, short


def test_a_fit_of_users_bags_asks_for_time_by_its_size_folds_and_search():
    from mixmil_workflow.workflow.resources import dataset_fit_runtime, search_fits

    mixmil, xgb = PAPER["models"]["mixmil"], PAPER["models"]["xgboost_moments"]
    default_mb = 1000 * 50 * 30 * 4 / 2**20  # the default scenario's training values as float32
    base = dataset_fit_runtime(mixmil, 1000, default_mb, 1, 1, scaling=Scaling(runtime_floor_minutes=1))
    assert base == pytest.approx(runtime("mixmil") / PAPER["simulation"]["n_outputs"], rel=0.1, abs=2)
    # instance-level models grow with the matrix, pooled ones with the bags (sizes where neither the floor
    # nor the whole minutes matter: a default-size MixMIL fit takes about a minute)
    grown = dataset_fit_runtime(mixmil, 1000, 100 * default_mb, 1, 1)
    assert dataset_fit_runtime(mixmil, 1000, 10_000 * default_mb, 1, 1) == pytest.approx(100 * grown, rel=0.05)
    assert dataset_fit_runtime(xgb, 4000, default_mb, 1, 1) == pytest.approx(
        4 * dataset_fit_runtime(xgb, 1000, 100 * default_mb, 1, 1), rel=0.03
    )  # fmt: skip (whole minutes)
    # a job of 5 outer folds, each with a 3 x 2 grid on 3 inner folds: 5 x (6 x 3 + 1) fits
    assert search_fits({"lr": [1, 2, 3], "n_epochs": [1, 2]}, 3) == 19 and search_fits({}, 3) == 1
    one = dataset_fit_runtime(xgb, 1000, default_mb, 1, 1)
    assert dataset_fit_runtime(xgb, 1000, default_mb, 1, 1, n_fits=5, search_fits=19) == pytest.approx(
        95 * one, rel=0.03
    )
    assert dataset_fit_runtime({**xgb, "runtime": 30}, 1000, default_mb, 1, 1, attempt=2) == 60
