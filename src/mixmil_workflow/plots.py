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
# Tree models: one colour family per library, one marker per bag pooling, so Fig. E.1 (ii)'s six lines read
# as two families of three.
TREE_LABELS = {"random_forest": "Random Forest", "xgboost": "XGBoost"}
TREE_COLOURS = {
    "random_forest": {"mean": "#1e8449", "median": "#52be80", "moments": "#0b5345", "instance": "#a9dfbf"},
    "xgboost": {"mean": "#6c3483", "median": "#a569bd", "moments": "#4a235a", "instance": "#d2b4de"},
}
POOLING_MARKERS = {"mean": "s", "median": "D", "moments": "P", "instance": "X"}


def is_mean_field(spec: dict) -> bool:
    return spec["type"] == "mixmil" and spec.get("posterior", "full_rank") == "mean_field"


def figure_model_sets(models: Sequence[str], specs: dict[str, dict]) -> dict[str, list[str]]:
    """Which models each figure shows: Fig. 2 the MIL models and the GLMM; Fig. E.1 (ii) the GLMM and the
    tree models on pooled features, with full-rank MixMIL as the reference they are compared with; Fig. E.2
    MixMIL's posteriors."""
    types = {m: specs[m]["type"] for m in models}
    return {
        "mil": [m for m in models if types[m] in MIL_TYPES],
        "traditional": [
            m for m in models if types[m] in TRADITIONAL_TYPES or (types[m] == "mixmil" and not is_mean_field(specs[m]))
        ],
        "posteriors": [m for m in models if types[m] == "mixmil"],
    }


def model_styles(models: Sequence[str], specs: dict[str, dict]) -> dict[str, dict]:
    """Line style and legend label of each model, from its type (and pooling or posterior): a model's config
    name need not be the paper's. Models that would share a label are told apart by their config names and
    colours."""
    styles = {}
    for i, model in enumerate(models):
        spec = specs[model]
        kind = spec["type"]
        if kind in TREE_LABELS:
            pooling = spec.get("pooling", "mean")
            style = dict(color=TREE_COLOURS[kind][pooling], marker=POOLING_MARKERS[pooling])
            style["label"] = f"{TREE_LABELS[kind]} ({pooling})"
        elif is_mean_field(spec):
            style = dict(MODEL_STYLES["mixmil_mean_field"])
        elif kind == "glmm" and spec.get("pooling", "mean") == "instance":
            style = dict(MODEL_STYLES["glmm"], marker="X", label="GLMM (instance)")
        else:
            style = dict(MODEL_STYLES.get(kind, dict(color=f"C{i}", marker="D", label=model)))
        styles[model] = style
    labels = [style["label"] for style in styles.values()]
    for i, (model, style) in enumerate(styles.items()):
        if labels.count(style["label"]) > 1:
            style["label"] = f"{style['label']}: {model}"
            style["color"] = f"C{i % 10}"
    return styles


def axis_figure(
    table: pd.DataFrame,
    metric: str,
    models: Sequence[str],
    defaults: dict,
    title: str | None = None,
    styles: dict[str, dict] | None = None,
) -> plt.Figure:
    """One panel per axis: metric (mean ± s.e. over repeats) against the axis value, one line per model
    (styles from `model_styles`; by default the paper's names); the default value of each axis is marked
    with a star (as in the paper). The legend (with the title) sits above the panels, in as many rows as it
    needs, and names every model drawn in any panel."""
    if styles is None:  # config names taken as model types: the paper's names get the paper's labels
        styles = model_styles(models, {m: {"type": m} for m in models})
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
        for model in models:
            mrows = rows[rows["model"] == model].sort_values("value")
            if mrows.empty or mrows[f"{metric}_mean"].isna().all():
                continue
            style = styles[model]
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
    fig.tight_layout()
    legend = {}
    for panel in panels[0]:
        for handle, label in zip(*panel.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if legend:
        ncol = min(len(legend), 2 + 2 * len(axes_present))
        fig.legend(
            list(legend.values()),
            list(legend),
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=ncol,
            frameon=False,
            title=title,
            title_fontproperties={"size": "large"},
        )
    elif title:
        fig.suptitle(title)
    return fig


def save_figure(fig: plt.Figure, *paths: str | Path) -> None:
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip("."), bbox_inches="tight", dpi=150)
    plt.close(fig)
