"""Training curves: the training loss against the epoch of every model of a study, one figure per study.

Every torch model records its loss per epoch (``MILModel.loss_history``); the fit jobs write it beside
their predictions (``loss_history`` in the per-fit ``.npz``; several fits of one job one after the other,
with ``loss_history_offsets``). Models fitted in closed form (GLMM, trees) have none and are named under
the figure instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def read_histories(path: str | Path) -> list[np.ndarray]:
    """The training-loss curves in one fit job's ``.npz`` (none for closed-form models)."""
    with np.load(path) as arrays:
        if "loss_history" not in arrays.files:
            return []
        history = arrays["loss_history"].astype(float)
        if "loss_history_offsets" in arrays.files:
            offsets = arrays["loss_history_offsets"]
            return [history[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True) if b > a]
    return [history] if history.size else []


def training_curves_figure(curves: Mapping[str, Sequence[np.ndarray]], title: str, *paths: str | Path) -> None:
    """Loss against epoch, one colour per model (each of its fits a line), log-scaled (symmetric-log when a
    loss is not positive, e.g. a Gaussian negative log-likelihood)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixmil_workflow.studies.simulation_plots import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    trained = {model: list(lines) for model, lines in curves.items() if any(len(h) for h in lines)}
    for k, (model, lines) in enumerate(trained.items()):
        for i, history in enumerate(lines):
            epochs = np.arange(1, len(history) + 1)
            ax.plot(
                epochs, history, color=f"C{k % 10}", lw=1.2, alpha=0.9 if i == 0 else 0.3, label=None if i else model
            )
    positive = all((h > 0).all() for lines in trained.values() for h in lines)
    ax.set_yscale("log" if positive else "symlog")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss" + ("" if positive else " (symmetric log scale)"))
    untrained = [model for model in curves if model not in trained]
    subtitle = f"\nno epochs (fitted in closed form): {', '.join(untrained)}" if untrained else ""
    ax.set_title(title + subtitle, fontsize=10)
    if trained:
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no model of this study trains by epochs", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, *paths)
