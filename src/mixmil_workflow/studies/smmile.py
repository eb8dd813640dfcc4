"""SMMILe against attention MIL on the spatial simulation: slide-level AUC and patch-level localisation.

Every model is fitted on the training slides' labels alone and scored on the test slides:
- ``slide_auc``: ROC-AUC of the slide probabilities;
- ``patch_auc``: ROC-AUC of the patch scores against the tumour mask, pooled over the positive test
  slides, each slide's scores min-max normalised first (attention weights depend on slide size; SMMILe's
  stage-1 scores are normalised the same way in its evaluation);
- ``patch_auc_all``: the same over every test slide, with the normalised score multiplied by the slide
  probability so that a slide called normal does not light up (the project's choice, the same for all
  models);
- ``precision`` / ``recall`` / ``f1``: patches with normalised score >= 0.5 on positive test slides;
- ``mimic_auc``: tumour patches against isolated tumour-like normal patches (the score of
  ``patch_auc_all``): what only a model that reads a patch's surroundings can separate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixmil_workflow.simulate.spatial import SpatialData

if TYPE_CHECKING:  # torch stays out of the summary job's env (report.yaml)
    from mixmil_workflow.bags import Bags


def build_spatial_model(spec: Mapping, seed: int, device: str = "cpu"):
    """An unfitted model for binary slide labels from a config entry (``type`` + hyperparameters)."""
    from mixmil_workflow.models.registry import build, model_types

    allowed = model_types(study="smmile")
    if spec.get("type") not in allowed:
        raise ValueError(f"spatial model type {spec.get('type')!r} is not one of {', '.join(allowed)}")
    return build(spec, seed, device, likelihood="binomial", n_trials=1)


def _patch_rows(data: SpatialData, slides: np.ndarray) -> np.ndarray:
    return np.concatenate([np.arange(data.offsets[s], data.offsets[s + 1]) for s in slides])


def split_bags(data: SpatialData, split: str) -> tuple[np.ndarray, Bags, np.ndarray]:
    """(slide indices, their bags, their patches' grid coordinates) of one split."""
    import torch

    slides = np.flatnonzero(data.split == split)
    if len(slides) == 0:
        raise ValueError(f"the spatial data has no {split!r} slides")
    rows = _patch_rows(data, slides)
    sizes = np.diff(data.offsets)[slides]
    from mixmil_workflow.bags import Bags

    bags = Bags(torch.as_tensor(data.x[rows]), torch.as_tensor(np.r_[0, np.cumsum(sizes)]))
    return slides, bags, data.coords[rows]


def fit_and_score(model, spec: Mapping, data: SpatialData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the model of config entry ``spec`` on the training slides; return (slide table, patch table) of
    the test slides."""
    from mixmil_workflow.studies.engine import context

    train, train_bags, train_coords = split_bags(data, "train")
    labels = data.slide_label[train].astype(float)
    model.fit(train_bags, labels[:, None], **context(spec, train_coords))
    test, test_bags, test_coords = split_bags(data, "test")
    extra = context(spec, test_coords)
    prob = model.predict(test_bags, **extra).mean[:, 0]
    scores = model.instance_scores(test_bags, **extra)
    rows = _patch_rows(data, test)
    slide_of_patch = np.repeat(test, np.diff(data.offsets)[test])
    slides = pd.DataFrame({"slide": test, "label": data.slide_label[test], "prob": prob})
    patches = pd.DataFrame(
        {
            "slide": slide_of_patch,
            "row": data.coords[rows, 0],
            "col": data.coords[rows, 1],
            "label": data.patch_label[rows],
            "mimic": data.mimic[rows],
            "score": scores[:, 0],
        }
    )
    return slides, patches


def _auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def localisation_metrics(slides: pd.DataFrame, patches: pd.DataFrame) -> dict[str, float]:
    """The metrics of the module docstring from one model's slide and patch tables. Patches labelled -1
    (inside a Camelyon16 exclusion polygon) count in the per-slide normalisation but are not scored."""
    group = patches.groupby("slide")["score"]
    lo, hi = group.transform("min"), group.transform("max")
    normalised = ((patches["score"] - lo) / (hi - lo).where(hi > lo, 1.0)).to_numpy()
    prob = patches["slide"].map(slides.set_index("slide")["prob"]).to_numpy()
    scored = patches["label"].to_numpy() >= 0
    positive = patches["slide"].isin(slides.loc[slides["label"] == 1, "slide"]).to_numpy() & scored
    label = patches["label"].to_numpy()
    called = normalised >= 0.5
    tp = int((called & (label == 1) & positive).sum())
    precision = tp / max(1, int((called & positive).sum()))
    recall = tp / max(1, int(((label == 1) & positive).sum()))
    evidence = normalised * prob
    versus_mimic = ((label == 1) | (patches["mimic"].to_numpy() == 1)) & scored
    return {
        "slide_auc": _auc(slides["label"], slides["prob"]),
        "patch_auc": _auc(label[positive], normalised[positive]),
        "patch_auc_all": _auc(label[scored], evidence[scored]),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0,
        "mimic_auc": _auc(label[versus_mimic], evidence[versus_mimic]),
    }


METRICS = ("slide_auc", "patch_auc", "patch_auc_all", "precision", "recall", "f1", "mimic_auc")


def summarise_spatial(metrics: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and standard error over repeats per model; rows in ``models`` order (the config's), else in
    order of appearance."""
    if models is not None:
        metrics = metrics.assign(model=pd.Categorical(metrics["model"], categories=list(models), ordered=True))
    group = metrics.groupby("model", sort=models is not None, observed=True)
    out = {"model": [str(m) for m in group.size().index]}
    for metric in METRICS:
        out[metric] = group[metric].mean().to_numpy()
        out[f"{metric}_se"] = (group[metric].std(ddof=1) / np.sqrt(group[metric].count())).fillna(0.0).to_numpy()
    out["n_repeats"] = group.size().to_numpy()
    return pd.DataFrame(out)


def spatial_maps(patches: Mapping[str, pd.DataFrame], n_slides: int = 4):
    """A figure: for ``n_slides`` positive test slides spread over the range of tumour sizes, the true
    mask and each model's min-max-normalised patch scores on the grid."""
    import matplotlib.pyplot as plt

    first = next(iter(patches.values()))
    tumour = first[first["label"] == 1].groupby("slide").size()
    positive = tumour.sort_values()
    chosen = list(positive.index[np.linspace(0, len(positive) - 1, min(n_slides, len(positive))).astype(int)])
    columns = ["truth", *patches]
    fig, axes = plt.subplots(len(chosen), len(columns), figsize=(2.1 * len(columns), 2.1 * len(chosen)), squeeze=False)
    for i, slide in enumerate(chosen):
        for j, name in enumerate(columns):
            table = first if name == "truth" else patches[name]
            rows = table[table["slide"] == slide]
            values = rows["label"].to_numpy(float) if name == "truth" else rows["score"].to_numpy(float)
            if name != "truth":
                values = (values - values.min()) / max(values.max() - values.min(), 1e-12)
            grid = np.full((rows["row"].max() + 1, rows["col"].max() + 1), np.nan)
            grid[rows["row"], rows["col"]] = values
            ax = axes[i, j]
            ax.imshow(grid, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"slide {slide}\n{int(tumour[slide])} tumour patches", fontsize=8)
    fig.tight_layout()
    return fig
