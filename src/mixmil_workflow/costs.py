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

import numpy as np
import pandas as pd

from .metrics import mean_and_se
from .simulation import SimulatedData
from .simulation_study import MINIBATCH_MODEL_TYPES, build_model


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
    """Time ``n_epochs`` of training (the first epoch is a warm-up and not counted) and ``n_timings``
    predictions of one batch of test bags; count the parameters. Returns one row of the cost table."""
    if spec["type"] not in MINIBATCH_MODEL_TYPES:
        raise ValueError(
            f"model {name!r} has type {spec['type']!r}; costs are measured for the MIL models "
            f"({', '.join(MINIBATCH_MODEL_TYPES)}), which train by minibatch steps"
        )
    if n_epochs < 2:
        raise ValueError("costs need n_epochs >= 2: the first epoch is a warm-up")
    model = build_model({**spec, "n_epochs": n_epochs, "batch_size": batch_size, "progress": False}, seed, device)
    train = data.bags("train")
    model.fit(train, data.y_train[:, :1])
    steps_per_epoch = math.ceil(train.n_bags / batch_size)
    step_ms = np.asarray(model.epoch_seconds[1:]) / steps_per_epoch * 1e3

    test = data.bags("test")
    batch = test.slice(0, min(batch_size, test.n_bags))
    model.predict(batch)  # warm-up
    predict_ms = []
    for _ in range(n_timings):
        _synchronise(device)
        start = time.perf_counter()
        model.predict(batch)
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
        "device": device,
    }


def cost_markdown(table: pd.DataFrame) -> str:
    """The Table 1 layout: batch and prediction time (ms, mean ± s.e.) and parameter counts."""
    from .simulation_study import format_mean_se

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
        f"\n\nOne output, Q = {first['n_features']}, {first['n_train_bags']} training bags, "
        f"{first['batch_size']} bags per batch, device {first['device']}; mean ± s.e. over epochs "
        "(training steps) and repeated predictions of one batch.\n"
    )
    return shown.to_markdown(index=False) + note
