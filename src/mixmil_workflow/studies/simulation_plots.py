"""Figures of the simulation study (Fig. 2, Fig. E.1, Fig. E.2 layouts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mixmil_workflow.io import atomic_path  # noqa: E402
from mixmil_workflow.models.registry import spec_type  # noqa: E402
from mixmil_workflow.studies.simulation import AXES, AXIS_LABELS  # noqa: E402

METRIC_LABELS = {"spearman": r"Spearman $\rho$ (test bags)", "instance_auc": "instance retrieval ROC-AUC (top 10%)"}


def spec_style(spec: dict, name: str, k: int = 0) -> dict[str, str]:
    """The registry's line style of a config entry; an unregistered type gets a cycle colour and its name."""
    try:
        return spec_type(spec).line_style(spec)
    except ValueError:
        return {"color": f"C{k % 10}", "marker": "D", "label": name}


def is_mean_field(spec: dict) -> bool:
    entry = spec_type(spec)
    return entry.family == "mixmil" and entry.variant(spec) == "mean_field"


def figure_model_sets(models: Sequence[str], specs: dict[str, dict]) -> dict[str, list[str]]:
    """Which models each figure shows: Fig. 2 the MIL models and the GLMM; Fig. E.1 (ii) the GLMM and the
    tree models on pooled features, with full-rank MixMIL as the reference they are compared with; Fig. E.2
    MixMIL's posteriors."""
    families = {m: spec_type(specs[m]).family for m in models}
    return {
        "mil": [m for m in models if families[m] in ("mixmil", "glmm", "mil")],
        "traditional": [
            m
            for m in models
            if families[m] in ("glmm", "tree") or (spec_type(specs[m]).is_reference and not is_mean_field(specs[m]))
        ],
        "posteriors": [m for m in models if families[m] == "mixmil"],
    }


def model_styles(models: Sequence[str], specs: dict[str, dict]) -> dict[str, dict]:
    """Line style and legend label of each model, from its type (and pooling or posterior) in the registry: a
    model's config name need not be the paper's. Models that would share a label are told apart by their
    config names and colours."""
    styles = {model: spec_style(specs[model], model, i) for i, model in enumerate(models)}
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
