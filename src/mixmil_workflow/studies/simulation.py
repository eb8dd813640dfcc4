"""The simulation study (paper Section 4.2, Fig. 2, Fig. E.1, E.2): scenarios, model runs, metrics.

A scenario is the default simulation with at most one parameter (an "axis") changed. The workflow
simulates every scenario x repeat, fits every configured model on it, evaluates on the test bags and
aggregates. This module is imported when Snakemake parses the workflow, so torch is imported lazily.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.simulate.paper import SimulatedData, SimulationParams

AXES = ("n_train", "v_gamma", "n_instances", "n_features", "v_beta")
AXIS_LABELS = {
    "n_train": "number of training bags",
    "v_gamma": r"instance-importance heterogeneity $v_\gamma$",
    "n_instances": "instances per bag",
    "n_features": "instance features Q",
    "v_beta": r"variance explained $v_\beta$",
}
DEFAULT_SCENARIO = "default"


def derive_seed(base: int, *keys: object) -> int:
    """A seed for one job from the config seed and the job's identity (stable across runs/machines)."""
    words = [int(base)] + [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def _format_value(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def scenario_grid(simulation: Mapping) -> dict[str, dict]:
    """Scenario name -> full simulation parameters: ``default`` plus ``<axis>-<value>`` for every axis
    value that differs from the default."""
    defaults = {**SimulationParams().as_dict(), **simulation["defaults"], "n_outputs": simulation["n_outputs"]}
    grid = {DEFAULT_SCENARIO: defaults}
    for axis, values in simulation.get("axes", {}).items():
        if axis not in AXES:
            raise ValueError(f"simulation axis {axis!r} is not one of {AXES}")
        for value in values:
            if value != defaults[axis]:
                grid[f"{axis}-{_format_value(value)}"] = {**defaults, axis: value}
    return grid


def model_runs(simulation: Mapping, models: Mapping, scenarios: Iterable[str]) -> list[tuple[str, str, int]]:
    """(model, scenario, repeat) of every fit: all scenarios, or the model's own ``scenarios`` list
    (e.g. the slow instance-level trees only in the default scenario, as Table E.1). None when the study is
    off, so an inactive simulation's model list (or its default) is never checked."""
    if not simulation.get("activate", True):
        return []
    from mixmil_workflow.models.registry import model_types
    from mixmil_workflow.workflow.config_checks import check_model_names

    runs = []
    allowed = model_types(study="simulation")
    for model in check_model_names("simulation.models", simulation["models"], models, allowed, "the simulation fits"):
        allowed = models[model].get("scenarios")
        for scenario in scenarios:
            if allowed is None or scenario in allowed:
                runs.extend((model, scenario, r) for r in range(simulation["n_repeats"]))
    return runs


def cost_models(costs: Mapping, models: Mapping, simulation_models: Iterable[str]) -> list[str]:
    """The models of the cost table: ``costs.models``, or when empty every MixMIL / neural MIL model of the
    simulation; none when ``costs.activate`` is false. Names must be defined and of those types."""
    if not costs.get("activate", True):
        return []
    from mixmil_workflow.models.registry import model_types
    from mixmil_workflow.workflow.config_checks import check_model_names

    allowed = model_types(study="costs", minibatch=True)
    names = costs.get("models") or [m for m in simulation_models if models[m]["type"] in allowed]
    return check_model_names(
        "costs.models",
        names,
        models,
        allowed,
        purpose="the cost table covers the MIL models that train by minibatch steps",
        fix="fix the name or set costs.activate: false",
    )


def scenario_axis_values(simulation: Mapping) -> list[tuple[str, str, float]]:
    """(axis, scenario, value) for every point of every axis, the default value included."""
    defaults = {**SimulationParams().as_dict(), **simulation["defaults"]}
    rows = []
    for axis, values in simulation.get("axes", {}).items():
        for value in sorted(set(values) | {defaults[axis]}):
            name = DEFAULT_SCENARIO if value == defaults[axis] else f"{axis}-{_format_value(value)}"
            rows.append((axis, name, float(value)))
    return rows


def simulate_scenario(params: Mapping, seed: int) -> SimulatedData:
    from mixmil_workflow.simulate.paper import simulate

    return simulate(SimulationParams(**params), seed)


def simulate_default(config: Mapping, repeat: str | int, seed: int | None = None, n_outputs: int | None = None):
    """The workflow's simulate_data output for the default scenario of ``config`` on this repeat (seed: the
    config's unless given; ``n_outputs``: fewer outputs of the same design, e.g. for timing)."""
    scenario = {**config["simulation"]["defaults"], "n_outputs": n_outputs or config["simulation"]["n_outputs"]}
    base = config["seed"] if seed is None else seed
    return simulate_scenario(scenario, derive_seed(base, "simulate", DEFAULT_SCENARIO, str(repeat)))


# model runs ------------------------------------------------------------------------------------
def run_model(
    spec: Mapping, data: SimulatedData, seed: int, device: str = "cpu", save_to: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Fit one configured model on the training bags (saved to ``save_to`` when given); predict the test
    bags.

    Returns ``bag_score`` (test bags, P), ``instance_score`` (test instances, P; empty when the model has
    none), ``train_seconds``, ``predict_seconds``, ``n_parameters``, ``loss_history`` and, for models that
    choose hyperparameters per output (the trees' searches), ``hyperparameters``: a JSON list with one dict
    per output (a 0-d string array, so the file loads without pickle).
    """
    from mixmil_workflow.models.registry import build
    from mixmil_workflow.studies import engine

    model = build(spec, seed, device)
    train_seconds = engine.fit_timed(model, data.bags("train"), data.y_train, save_to=save_to)
    test = data.bags("test")
    start = time.perf_counter()
    prediction, instance_score = model.predict_with_instance_scores(test)
    bag_score = prediction.bag_effect
    if instance_score is None:
        instance_score = np.zeros((0, bag_score.shape[1]))
    predict_seconds = time.perf_counter() - start
    chosen = model.chosen_hyperparameters
    if chosen:
        print(f"selected hyperparameters per output: {chosen}")
    result = {
        "bag_score": bag_score,
        "instance_score": instance_score,
        "train_seconds": np.array(train_seconds),
        "predict_seconds": np.array(predict_seconds),
        "n_parameters": engine.parameter_counts(model),
        "loss_history": model.loss_history,
    }
    if chosen:
        result["hyperparameters"] = np.array(json.dumps(chosen))
    return result


def hyperparameter_table(runs: Iterable[tuple[str, str, int]], prediction_paths: Iterable[str | Path]) -> pd.DataFrame:
    """The hyperparameters each run chose, one row per model, scenario, repeat and output and one column per
    hyperparameter (the Table C.3 / C.4 searches'; a search's choice otherwise lives only in its job log).
    Runs without choices (MixMIL, the neural baselines, the GLMM, predictions of older versions) add no rows.
    """
    rows = []
    for (model, scenario, repeat), path in zip(runs, prediction_paths, strict=True):
        with np.load(path) as arrays:
            if "hyperparameters" not in arrays:
                continue
            chosen = json.loads(str(arrays["hyperparameters"]))
        for output, params in enumerate(chosen):
            rows.append({"model": model, "scenario": scenario, "repeat": repeat, "output": output, **params})
    return pd.DataFrame(rows, columns=None if rows else ["model", "scenario", "repeat", "output"])


# evaluation ------------------------------------------------------------------------------------
def evaluate(data: SimulatedData, predictions: Mapping[str, np.ndarray], top_fraction: float = 0.1) -> pd.DataFrame:
    """One row per output: Spearman of bag scores with the true bag effects; instance-retrieval AUC
    (NaN for models without instance scores)."""
    from mixmil_workflow.metrics import retrieval_auc_per_output, spearman_per_output

    rho = spearman_per_output(predictions["bag_score"], data.u_test)
    instance = predictions["instance_score"]
    if instance.size:
        auc = retrieval_auc_per_output(instance, data.w_test.reshape(-1, data.w_test.shape[-1]), top_fraction)
    else:
        auc = np.full_like(rho, np.nan)
    return pd.DataFrame(
        {
            "output": np.arange(len(rho)),
            "spearman": rho,
            "instance_auc": auc,
            "train_seconds": float(predictions["train_seconds"]),
            "predict_seconds": float(predictions["predict_seconds"]),
        }
    )


def evaluate_runs(
    runs: Iterable[tuple[str, object, int]],
    data_paths: Iterable[str | Path],
    prediction_paths: Iterable[str | Path],
    top_fraction: float = 0.1,
    keys: tuple[str, str, str] = ("model", "scenario", "repeat"),
) -> pd.DataFrame:
    """Evaluate every fitted run on its test bags: the long table, one row per model, scenario, repeat and
    output.

    ``runs``: (model, scenario, repeat), with each run's dataset and predictions in ``data_paths`` and
    ``prediction_paths`` (same order); ``keys`` names the first three columns (the sweep's second is its
    grid combination). All runs are evaluated in one process
    (one job instead of one per run: the metrics take milliseconds, a job's Python start-up seconds); each
    simulated dataset is read once for all the models fitted on it.
    """
    # Grouped by dataset, keeping each run's position so the table follows the order of ``runs``.
    by_data: dict[str, list[tuple[int, tuple, str | Path]]] = {}
    for index, (run, data_path, predictions_path) in enumerate(zip(runs, data_paths, prediction_paths, strict=True)):
        by_data.setdefault(str(data_path), []).append((index, run, predictions_path))
    frames: dict[int, pd.DataFrame] = {}
    for done, (data_path, group) in enumerate(by_data.items(), start=1):
        with np.load(data_path) as arrays:
            data = SimulatedData.from_arrays(arrays)
        for index, labels, predictions_path in group:
            with np.load(predictions_path) as arrays:
                predictions = dict(arrays)
            missing = sorted({"bag_score", "instance_score", "train_seconds", "predict_seconds"} - set(predictions))
            if missing:
                raise ValueError(
                    f"{predictions_path}: predictions lack {', '.join(missing)}; it was not written by the "
                    "fit rule of this version. Delete it and rerun the workflow to refit."
                )
            frame = evaluate(data, predictions, top_fraction)
            for position, (key, label) in enumerate(zip(keys, labels, strict=True)):
                frame.insert(position, key, label)
            frames[index] = frame
        print(f"evaluated {data_path} ({len(group)} fits); {done}/{len(by_data)} datasets", flush=True)
    return pd.concat([frames[index] for index in sorted(frames)], ignore_index=True)


def summarise_runs(long: pd.DataFrame) -> pd.DataFrame:
    """The summary per model and scenario of the long table (``evaluate_runs``): the mean over outputs
    within a repeat, then the mean and standard error over repeats (over outputs when there is one repeat).
    """
    from mixmil_workflow.metrics import mean_and_se

    rows = []
    for (model, scenario), group in long.groupby(["model", "scenario"], sort=False):
        row = {"model": model, "scenario": scenario, "n_repeats": group["repeat"].nunique()}
        for metric in ("spearman", "instance_auc"):
            per_repeat = group.groupby("repeat")[metric].mean()
            values = per_repeat.to_numpy() if len(per_repeat) > 1 else group[metric].to_numpy()
            row[f"{metric}_mean"], row[f"{metric}_se"] = mean_and_se(values)
        row["train_seconds_mean"] = group.groupby("repeat")["train_seconds"].first().mean()
        rows.append(row)
    return pd.DataFrame(rows)


def reference_model(simulation: Mapping, models: Mapping) -> str | None:
    """The model that the paired table compares every other with: ``simulation.reference_model``, else the
    first MixMIL model of ``simulation.models``, else its first model (None when the study is off)."""
    if not simulation.get("activate", True):
        return None
    names = list(simulation["models"])
    chosen = simulation.get("reference_model")
    if chosen is not None:
        if chosen not in names:
            raise ValueError(
                f"config: simulation.reference_model is {chosen!r}, which is not in simulation.models ({names}); "
                "name one of those models or remove the field (default: the first MixMIL model)"
            )
        return chosen
    from mixmil_workflow.models.registry import spec_type

    return next((name for name in names if spec_type(models[name]).is_reference), names[0])


def paired_table(long: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Every model against ``reference``, paired on the same simulated outputs of each scenario.

    The paper's claims are comparisons (MixMIL above every MIL baseline, the mean-field posterior slightly
    below the full-rank one); the difference of the summary means hides how often and how consistently one
    model is ahead, so this table pairs them: the reference's metric minus the model's, on each (repeat,
    output) that both were fitted on, averaged within a repeat; mean and standard error over repeats (over
    outputs when there is one repeat, as ``summarise_runs``), and on how many of those units the reference
    is ahead. Retrieval AUC is paired where both models have instance scores (NaN otherwise).
    """
    from mixmil_workflow.metrics import mean_and_se

    keys = ["scenario", "repeat", "output"]
    metrics = ["spearman", "instance_auc"]
    ref = long[long["model"] == reference][keys + metrics]
    rows = []
    for (model, scenario), group in long[long["model"] != reference].groupby(["model", "scenario"], sort=False):
        pairs = group[keys + metrics].merge(ref, on=keys, suffixes=("", "_reference"))
        if pairs.empty:
            continue
        one_repeat = pairs["repeat"].nunique() == 1
        row = {
            "model": model,
            "scenario": scenario,
            "unit": "output" if one_repeat else "repeat",
            "n_units": len(pairs) if one_repeat else pairs["repeat"].nunique(),
        }
        for metric in metrics:
            both = pairs[np.isfinite(pairs[metric]) & np.isfinite(pairs[f"{metric}_reference"])]
            difference = both[f"{metric}_reference"] - both[metric]
            values = difference.to_numpy() if one_repeat else difference.groupby(both["repeat"]).mean().to_numpy()
            row[f"{metric}_difference_mean"], row[f"{metric}_difference_se"] = mean_and_se(values)
            row[f"{metric}_reference_ahead"] = int((values > 0).sum()) if len(values) else np.nan
            row[f"{metric}_n_paired"] = len(values)
        rows.append(row)
    columns = ["model", "scenario", "unit", "n_units"] + [
        f"{metric}_{part}"
        for metric in metrics
        for part in ("difference_mean", "difference_se", "reference_ahead", "n_paired")
    ]
    table = pd.DataFrame(rows, columns=columns)
    # Scenarios in the long table's order, models within a scenario too (groupby above ran model-major).
    scenario_order = {name: i for i, name in enumerate(dict.fromkeys(long["scenario"]))}
    model_order = {name: i for i, name in enumerate(dict.fromkeys(long["model"]))}
    return table.sort_values(
        ["scenario", "model"],
        key=lambda column: column.map(scenario_order if column.name == "scenario" else model_order),
    ).reset_index(drop=True)


def paired_markdown_table(paired: pd.DataFrame, reference: str) -> pd.DataFrame:
    """``paired_table`` for reading: differences as mean ± s.e., and "ahead on k / n" units."""
    from mixmil_workflow.metrics import format_mean_se

    table = paired[["model", "scenario"]].copy()
    for metric, label in (("spearman", "Spearman"), ("instance_auc", "AUC")):
        table[f"{label}, {reference} − model"] = [
            format_mean_se(m, s)
            for m, s in zip(paired[f"{metric}_difference_mean"], paired[f"{metric}_difference_se"], strict=True)
        ]
        counts = zip(paired[f"{metric}_reference_ahead"], paired[f"{metric}_n_paired"], paired["unit"], strict=True)
        table[f"{reference} ahead ({label})"] = [f"{int(c)} / {n} {u}s" if n else "–" for c, n, u in counts]
    return table


def axis_table(summary: pd.DataFrame, simulation: Mapping) -> pd.DataFrame:
    """Summary rows laid out per axis point (the data behind Fig. 2 / E.1 / E.2)."""
    points = pd.DataFrame(scenario_axis_values(simulation), columns=["axis", "scenario", "value"])
    return points.merge(summary, on="scenario", how="inner").sort_values(["axis", "model", "value"])


def default_scenario_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The default scenario per model (the Table E.1 layout): Spearman and retrieval AUC, mean ± s.e."""
    from mixmil_workflow.metrics import format_mean_se

    rows = summary[summary["scenario"] == DEFAULT_SCENARIO]
    return pd.DataFrame(
        {
            "model": rows["model"],
            "spearman": [format_mean_se(m, s) for m, s in zip(rows["spearman_mean"], rows["spearman_se"], strict=True)],
            "instance_auc": [
                format_mean_se(m, s) for m, s in zip(rows["instance_auc_mean"], rows["instance_auc_se"], strict=True)
            ],
            "n_repeats": rows["n_repeats"],
            "train_seconds": rows["train_seconds_mean"].round(1),
        }
    )
