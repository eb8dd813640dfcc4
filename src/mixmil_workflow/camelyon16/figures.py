"""Camelyon16 figures: ROC curves of the test slides and per-slide instance-score strips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mixmil_workflow.studies.simulation_plots import save_figure, spec_style  # noqa: E402


def _style(kind: str, k: int) -> dict:
    return spec_style({"type": kind}, kind, k)


def roc_figure(
    predictions: Mapping[tuple[str, int], pd.DataFrame], types: Mapping[str, str], table: pd.DataFrame, paths
) -> None:
    """One ROC curve per model and seed on the test slides; the legend gives the AUC mean ± s.e."""
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5.2, 5))
    auc = table.set_index("model")
    for k, model in enumerate(dict.fromkeys(m for m, _ in predictions)):
        style = _style(types[model], k)
        seeds = [s for m, s in predictions if m == model]
        for j, seed in enumerate(seeds):
            test = predictions[(model, seed)].query("split == 'test'")
            fpr, tpr, _ = roc_curve(test["label"], test["score"])
            label = None
            if j == 0:
                label = f"{model}: {auc.loc[model, 'test_auc_mean']:.3f} ± {auc.loc[model, 'test_auc_se']:.3f}"
            ax.plot(fpr, tpr, color=style["color"], alpha=0.7 if len(seeds) > 1 else 1.0, lw=1.2, label=label)
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title("Camelyon16 test slides (one curve per training seed)", fontsize=10)
    ax.legend(title="test AUC (mean ± s.e.)", fontsize=8, title_fontsize=8, loc="lower right")
    save_figure(fig, *paths)


def instance_strips(
    instance_files: Mapping[str, str | Path], slides: Sequence[str], truth: pd.DataFrame | None, paths
) -> None:
    """For each chosen test slide, one strip per model: patches in archive order, coloured by the
    within-slide rank of their instance score (the DSMIL features carry no coordinates, so this is the
    heatmap's data without the slide geometry). With the demo's patch truth, a top strip shows it."""
    scores = {}
    for model, path in instance_files.items():
        with np.load(path) as f:
            if f["scores"].size:
                index = {s: k for k, s in enumerate(f["slides"])}
                scores[model] = (index, f["offsets"], f["scores"])
    rows = (["truth"] if truth is not None else []) + list(scores)
    fig, axes = plt.subplots(len(slides), 1, figsize=(7, 0.35 * len(rows) * len(slides) + 0.8), squeeze=False)
    for ax, slide in zip(axes[:, 0], slides, strict=True):
        strips = []
        for name in rows:
            if name == "truth":
                strips.append(truth.loc[truth["slide"] == slide].sort_values("patch")["tumor"].to_numpy(float))
            else:
                index, offsets, values = scores[name]
                k = index[slide]
                strips.append(pd.Series(values[offsets[k] : offsets[k + 1]]).rank(pct=True).to_numpy())
        ax.imshow(np.vstack(strips), aspect="auto", cmap="magma", interpolation="nearest", vmin=0, vmax=1)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xticks([])
        ax.set_title(slide, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("patches (archive order); colour: within-slide rank of the instance score")
    save_figure(fig, *paths)
