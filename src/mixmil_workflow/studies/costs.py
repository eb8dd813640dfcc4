"""Computational cost of the MIL models (the paper's Table 1 analogue).

For every MIL model: the wall time of one training step (one optimiser update on a minibatch of bags),
the time to predict a minibatch of bags, and the likelihood and variational parameter counts. All models
are fitted on the same data (one output, as Table 1 reports per genetic label) with the same batch size,
in one process, so their ratios are comparable; absolute times depend on the machine and are recorded
as results, never asserted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.metrics import mean_and_se
from mixmil_workflow.models.registry import build, model_types, spec_type
from mixmil_workflow.simulate.paper import SimulatedData


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure_model_costs(
    name: str,
    spec: Mapping,
    data: SimulatedData,
    seed: int,
    device: str = "cpu",
    batch_size: int = 64,
    n_epochs: int = 3,
    n_timings: int = 20,
) -> dict:
    """:func:`measure_bag_costs` on a simulated dataset's first output (the simulation's Table 1)."""
    return measure_bag_costs(
        name,
        spec,
        data.bags("train"),
        data.y_train[:, :1],
        data.bags("test"),
        seed,
        device,
        batch_size=batch_size,
        n_epochs=n_epochs,
        n_timings=n_timings,
    )


def measure_bag_costs(
    name: str,
    spec: Mapping,
    train,
    y_train: np.ndarray,
    test,
    seed: int,
    device: str = "cpu",
    batch_size: int = 64,
    n_epochs: int = 3,
    n_timings: int = 20,
    train_covariates: np.ndarray | None = None,
    test_covariates: np.ndarray | None = None,
    likelihood: str = "binomial",
    n_trials: int | None = 2,
) -> dict:
    """Time ``n_epochs`` of training on ``train`` (the first epoch is a warm-up and not counted) and
    ``n_timings`` predictions of one batch of ``test`` bags; count the parameters. Returns one row of the
    cost table."""
    if not spec_type(spec).minibatch:
        raise ValueError(
            f"model {name!r} has type {spec['type']!r}; costs are measured for the MIL models "
            f"({', '.join(model_types(minibatch=True))}), which train by minibatch steps"
        )
    if n_epochs < 2:
        raise ValueError("costs need n_epochs >= 2: the first epoch is a warm-up")
    settings = {**spec, "n_epochs": n_epochs, "batch_size": batch_size, "progress": False}
    model = build(settings, seed, device, likelihood=likelihood, n_trials=n_trials)
    model.fit(train, y_train, train_covariates)
    steps_per_epoch = math.ceil(train.n_bags / batch_size)
    step_ms = np.asarray(model.epoch_seconds[1:]) / steps_per_epoch * 1e3

    n_batch = min(batch_size, test.n_bags)
    batch = test.slice(0, n_batch)
    batch_covariates = None if test_covariates is None else test_covariates[:n_batch]
    model.predict(batch, batch_covariates)  # warm-up
    predict_ms = []
    for _ in range(n_timings):
        _synchronise(device)
        start = time.perf_counter()
        model.predict(batch, batch_covariates)
        _synchronise(device)
        predict_ms.append((time.perf_counter() - start) * 1e3)

    counts = model.n_parameters()
    step_mean, step_se = mean_and_se(step_ms)
    predict_mean, predict_se = mean_and_se(np.array(predict_ms))
    return {
        "model": name,
        "type": spec["type"],
        "batch_ms_mean": step_mean,
        "batch_ms_se": step_se,
        "predict_ms_mean": predict_mean,
        "predict_ms_se": predict_se,
        "likelihood_parameters": int(counts["likelihood"]),
        "variational_parameters": int(counts["variational"]),
        "batch_size": batch_size,
        "n_features": train.n_features,
        "n_train_bags": train.n_bags,
        "n_outputs": int(np.asarray(y_train).reshape(train.n_bags, -1).shape[1]),
        "n_covariates": 0 if train_covariates is None else int(train_covariates.shape[1]),
        "device": device,
    }


def cost_layout(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The Table 1 layout: batch and prediction time (ms, mean ± s.e.) and parameter counts, and the note
    on what was measured."""
    from mixmil_workflow.metrics import format_mean_se

    shown = pd.DataFrame(
        {
            "model": table["model"],
            "batch time (ms)": [
                format_mean_se(m, s, 2) for m, s in zip(table["batch_ms_mean"], table["batch_ms_se"], strict=True)
            ],
            "predict time (ms)": [
                format_mean_se(m, s, 2) for m, s in zip(table["predict_ms_mean"], table["predict_ms_se"], strict=True)
            ],
            "lik pars (#)": table["likelihood_parameters"],
            "var pars (#)": [v if v else "–" for v in table["variational_parameters"]],
        }
    )
    first = table.iloc[0]
    note = (
        f"{first['n_outputs']} output(s), {first['n_covariates']} covariate(s), Q = {first['n_features']}, "
        f"{first['n_train_bags']} training bags, "
        f"{first['batch_size']} bags per batch, device {first['device']}; mean ± s.e. over epochs "
        "(training steps) and repeated predictions of one batch."
    )
    return shown, note


def save_cost_tables(
    rows: list[dict], tsv: str | Path, md: str | Path, provenance: Mapping | None, html: str | Path | None = None
) -> str:
    """The cost table as TSV and in the Table 1 layout (Markdown, and the report's HTML page), all with their
    provenance."""
    from mixmil_workflow.html_tables import page, paragraph, table_html
    from mixmil_workflow.io import atomic_path, save_table
    from mixmil_workflow.workflow.provenance import provenance_footer, provenance_lines

    table = pd.DataFrame(rows)
    save_table(tsv, table.round(4), provenance=provenance)
    shown, note = cost_layout(table)
    markdown = shown.to_markdown(index=False) + "\n\n" + note + "\n"
    with atomic_path(md) as tmp:
        tmp.write_text(markdown + (provenance_footer(provenance) if provenance is not None else ""))
    if html is not None:
        lines = provenance_lines(provenance) if provenance is not None else None
        with atomic_path(html) as tmp:
            tmp.write_text(page("Table 1: costs", [table_html(shown), paragraph(note)], lines))
    return markdown
