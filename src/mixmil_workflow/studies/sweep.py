"""Hyperparameter sweep of the MIL baselines (the paper's Appendix C.1, Tables C.1 and C.2).

The paper tuned every MIL baseline on 10 datasets simulated from the default scenario, each with a
training and a validation set, and picked the combination with the best mean validation Spearman
correlation. Here each combination of a model's grid is fitted on the training bags of every sweep
dataset and scored on its held-out bags (the simulation's test split, which for these datasets is a
validation set: they are simulated with their own seeds, so the study's test sets are never seen).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mixmil_workflow.metrics import mean_and_se
from mixmil_workflow.models.registry import model_type, model_types

# Hyperparameters a sweep may vary, over every type (the registry's per-type lists: Tables C.1, C.5 and C.7 and
# the training length); their order is the column order of the grid tables.
SWEEPABLE = tuple(dict.fromkeys(key for name in model_types() for key in model_type(name).sweepable))


def expand_grid(grid: Mapping[str, list]) -> list[dict]:
    """Every combination of the grid's values, in a stable order (keys sorted, values as given)."""
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def sweep_combinations(sweep: Mapping, models: Mapping) -> dict[str, list[dict]]:
    """Model name -> the full model specification of each grid combination."""
    from mixmil_workflow.workflow.config_checks import check_model_names

    combos = {}
    check_model_names(
        "sweep.grid",
        sweep.get("grid", {}),
        models,
        model_types(study="sweep"),
        purpose="the sweep tunes the neural MIL baselines",
    )
    for name, grid in sweep.get("grid", {}).items():
        sweepable = model_type(models[name]["type"]).sweepable
        unknown = sorted(set(grid) - set(sweepable))
        if unknown:
            raise ValueError(f"config: sweep.grid.{name} varies {unknown}; sweepable: {', '.join(sweepable)}")
        base = {k: v for k, v in models[name].items() if k != "scenarios"}
        combos[name] = [{**base, **combo} for combo in expand_grid(grid)]
    return combos


def sweep_runs(combos: Mapping[str, list[dict]], n_repeats: int) -> list[tuple[str, int, int]]:
    """(model, combination, repeat) of every sweep fit."""
    return [(model, c, r) for model, specs in combos.items() for c in range(len(specs)) for r in range(n_repeats)]


def summarise_sweep(long: pd.DataFrame, combos: Mapping[str, list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``long``: the validation metrics of every sweep fit, one row per model, combination, repeat and
    output (``simulation_study.evaluate_runs`` with keys model, combination, repeat).

    Returns the grid table (Table C.1 analogue: every combination with its mean ± s.e. validation Spearman
    over datasets, each dataset's Spearman the mean over its outputs) and the selection (Table C.2
    analogue: the best combination per model)."""
    per_run = long.groupby(["model", "combination", "repeat"], sort=True)["spearman"].mean().reset_index()
    rows = []
    for (model, combo), group in per_run.groupby(["model", "combination"], sort=True):
        mean, se = mean_and_se(group["spearman"].to_numpy())
        varied = {k: combos[model][combo][k] for k in SWEEPABLE if k in combos[model][combo]}
        rows.append({"model": model, "combination": combo, **varied, "spearman_mean": mean, "spearman_se": se})
    grid = pd.DataFrame(rows)
    best = grid.loc[grid.groupby("model", sort=False)["spearman_mean"].idxmax()].reset_index(drop=True)
    return grid, best


def write_selected_models(path: str | Path, best: pd.DataFrame, combos: Mapping[str, list[dict]]) -> dict:
    """Write the selected combinations as drop-in ``models:`` entries (YAML); returns them."""
    import yaml

    from mixmil_workflow.io import atomic_path

    selected = {row.model: dict(combos[row.model][int(row.combination)]) for row in best.itertuples()}
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump({"models": selected}, sort_keys=False))
    return selected


def save_sweep_tables(
    grid: pd.DataFrame, best: pd.DataFrame, combos: Mapping[str, list[dict]], provenance: Mapping, outputs
) -> None:
    """Every sweep's outputs, named as the select rules name them (``outputs``: their Snakemake output or a
    dict): the grid (``grid`` TSV to 4 decimals, ``grid_md`` Markdown and ``grid_html`` the report's page to
    3), the selection (``selected_md``, and the ``selected`` TSV where the rule has one) and the selected
    combinations as ``models:`` entries (``selected_yaml``)."""
    from mixmil_workflow.io import save_table

    save_table(outputs["grid"], grid.round(4), provenance=provenance)
    for key in ("grid_md", "grid_html"):
        save_table(outputs[key], grid.round(3), provenance=provenance)
    if "selected" in outputs.keys():
        save_table(outputs["selected"], best.round(4), provenance=provenance)
    save_table(outputs["selected_md"], best.round(3), provenance=provenance)
    print(best.to_string(index=False))
    write_selected_models(outputs["selected_yaml"], best, combos)
