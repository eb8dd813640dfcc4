"""Figures of the simulation study (Fig. 2, Fig. E.1, Fig. E.2 layouts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402
from .simulation_study import AXES, AXIS_LABELS  # noqa: E402

MODEL_STYLES = {
    "mixmil": dict(color="#c0392b", marker="o", label="MixMIL"),
    "mixmil_mean_field": dict(color="#e67e22", marker="s", label="MixMIL (mean field)"),
    "glmm": dict(color="#2c3e50", marker="^", label="GLMM"),
    "abmil": dict(color="#2980b9", marker="v", label="ABMIL"),
    "gated_abmil": dict(color="#16a085", marker="P", label="Gated ABMIL"),
    "dsmil": dict(color="#8e44ad", marker="X", label="DSMIL"),
    "bayes_mil": dict(color="#7f8c8d", marker="D", label="Bayes-MIL"),
    "additive_mil": dict(color="#d35400", marker="*", label="Additive MIL"),
    "momil": dict(color="#27ae60", marker="h", label="MoMIL"),
}
METRIC_LABELS = {"spearman": r"Spearman $\rho$ (test bags)", "instance_auc": "instance retrieval ROC-AUC (top 10%)"}


MIL_TYPES = ("mixmil", "glmm", "abmil", "gated_abmil", "dsmil", "bayes_mil", "additive_mil", "momil")
TRADITIONAL_TYPES = ("glmm", "random_forest", "xgboost")


def figure_model_sets(models: Sequence[str], types: dict[str, str]) -> dict[str, list[str]]:
    """Which models each figure shows: Fig. 2 the MIL models and the GLMM; Fig. E.1 (ii) the GLMM and the
    tree models on pooled features."""
    return {
        "mil": [m for m in models if types[m] in MIL_TYPES],
        "traditional": [m for m in models if types[m] in TRADITIONAL_TYPES],
    }


def _style(model: str, index: int) -> dict:
    return MODEL_STYLES.get(model, dict(color=f"C{index}", marker="D", label=model))


def axis_figure(
    table: pd.DataFrame, metric: str, models: Sequence[str], defaults: dict, title: str | None = None
) -> plt.Figure:
    """One panel per axis: metric (mean ± s.e. over repeats) against the axis value, one line per model;
    the default value of each axis is marked with a star (as in the paper)."""
    axes_present = [a for a in AXES if a in set(table["axis"])]
    if not axes_present:  # a config may run the default scenario only; say so instead of failing
        fig, panel = plt.subplots(figsize=(4.5, 2.0))
        panel.axis("off")
        message = "No simulation axes in the config (simulation.axes is empty):\nsee the default-scenario table."
        panel.text(0.5, 0.5, message, ha="center", va="center")
        if title:
            fig.suptitle(title)
        return fig
    fig, panels = plt.subplots(1, len(axes_present), figsize=(3.4 * len(axes_present), 3.2), squeeze=False)
    for panel, axis in zip(panels[0], axes_present, strict=True):
        rows = table[table["axis"] == axis]
        for i, model in enumerate(models):
            mrows = rows[rows["model"] == model].sort_values("value")
            if mrows.empty or mrows[f"{metric}_mean"].isna().all():
                continue
            style = _style(model, i)
            panel.errorbar(
                mrows["value"],
                mrows[f"{metric}_mean"],
                yerr=mrows[f"{metric}_se"],
                capsize=3,
                lw=1.5,
                ms=5,
                **style,
            )
        ymin, _ = panel.get_ylim()
        panel.plot([defaults[axis]], [ymin], marker="*", color="gold", ms=14, mec="k", clip_on=False, zorder=5)
        if axis == "n_train" and rows["value"].max() / max(rows["value"].min(), 1) > 8:
            panel.set_xscale("log")
        panel.set_xlabel(AXIS_LABELS[axis])
        panel.grid(alpha=0.3)
    panels[0][0].set_ylabel(METRIC_LABELS[metric])
    handles, labels = panels[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, 1.08))
    if title:
        fig.suptitle(title, y=1.16)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, *paths: str | Path) -> None:
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip("."), bbox_inches="tight", dpi=150)
    plt.close(fig)
