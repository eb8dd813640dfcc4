"""SMMILe against attention MIL on the spatial simulation: slide-level AUC and patch-level localisation,
for the three task families of SMMILe's paper (``SpatialData.task``: binary, multiclass, multilabel).

Every model is fitted on the training slides' labels alone (binary: Bernoulli; multiclass: categorical
over normal and the K tumour types; multilabel: one Bernoulli column per type) and scored on the test
slides. Per positive category k (binary: the one tumour category), each slide's patch scores for k are
min-max normalised first (attention weights depend on slide size; SMMILe's stage-1 scores are normalised
the same way in its evaluation):
- ``slide_auc``: ROC-AUC of the slide probabilities, macro over the categories (multiclass: one against
  the rest over normal and every type); ``slide_accuracy``: the predicted category (multiclass: the most
  probable; binary and multilabel: probability > 0.5, averaged over the categories);
- ``patch_auc_<k>``: ROC-AUC of the patch scores for k against the patches of type k, pooled over the test
  slides that hold k; ``patch_auc`` their mean over the categories (macro);
- ``patch_auc_all``: over every test slide and category, the normalised score times the slide's
  probability of k, so that a slide called normal does not light up (the project's choice, the same for
  all models);
- ``precision`` / ``recall`` / ``f1_<k>``: patches with normalised score >= 0.5 on the slides that hold k;
  ``precision``, ``recall``, ``f1``: macro over the categories;
- ``mimic_auc``: tumour patches against isolated tumour-like normal patches (the strongest evidence over
  the categories): what only a model that reads a patch's surroundings can separate.
A model with one instance score per patch (an attention weight shared by the categories) scores every
category with it; SMMILe and the multi-output models give one per category.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixmil_workflow.simulate.spatial import SpatialData

if TYPE_CHECKING:  # torch stays out of the summary job's env (report.yaml)
    from mixmil_workflow.bags import Bags


def task_likelihood(task: str, n_types: int) -> dict:
    """The label likelihood of a task family: binary and multilabel Bernoulli columns, multiclass
    categorical over normal and the ``n_types`` tumour types."""
    if task == "multiclass":
        return {"likelihood": "categorical", "n_trials": None, "n_classes": n_types + 1}
    return {"likelihood": "bernoulli", "n_trials": 1}


def build_spatial_model(spec: Mapping, seed: int, device: str = "cpu", task: str = "binary", n_types: int = 1):
    """An unfitted model for a task family's slide labels from a config entry (``type`` + hyperparameters)."""
    from mixmil_workflow.models.registry import build, model_types

    allowed = model_types(study="smmile")
    if spec.get("type") not in allowed:
        raise ValueError(f"spatial model type {spec.get('type')!r} is not one of {', '.join(allowed)}")
    return build(spec, seed, device, **task_likelihood(task, n_types))


def slide_targets(data: SpatialData, slides: np.ndarray) -> np.ndarray:
    """The labels a model is fitted on: binary (slides, 1), multiclass codes (slides,), multilabel (slides, K)."""
    labels = data.slide_label[slides]
    if data.task == "binary":
        return labels.astype(float)[:, None]
    return labels.astype(float) if data.task == "multilabel" else labels.astype(int)


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


def fit_and_score(
    model, spec: Mapping, data: SpatialData, save_to: str | Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the model of config entry ``spec`` on the training slides (saved to ``save_to`` when given);
    return (slide table, patch table) of the test slides."""
    from mixmil_workflow.studies.engine import context, fit_timed

    train, train_bags, train_coords = split_bags(data, "train")
    fit_timed(model, train_bags, slide_targets(data, train), save_to=save_to, **context(spec, train_coords))
    test, test_bags, test_coords = split_bags(data, "test")
    extra = context(spec, test_coords)
    prediction, scores = model.predict_with_instance_scores(test_bags, **extra)
    prob = np.asarray(prediction.mean).reshape(len(test), -1)
    scores = np.asarray(scores).reshape(len(_patch_rows(data, test)), -1)
    categories = data.categories
    # multiclass outputs hold normal (column 0) and the types; the others one column per type
    column = {k: (k if data.task == "multiclass" else k - 1) for k in categories}
    rows = _patch_rows(data, test)
    slide_of_patch = np.repeat(test, np.diff(data.offsets)[test])
    holds = data.slide_categories(test)
    slides = pd.DataFrame({"slide": test, "label": data.slide_label[test].tolist()
                           if data.task == "multilabel" else data.slide_label[test]})  # fmt: skip
    if data.task == "multilabel":
        slides["label"] = [";".join(str(k) for k in categories if h[k - 1]) or "0" for h in holds]
    for j, k in enumerate(categories):
        slides[f"holds_{k}"] = holds[:, j]
        slides[f"prob_{k}"] = prob[:, column[k]]
    if data.task == "multiclass":
        slides["prob_0"] = prob[:, 0]
    slides["prob"] = slides[[f"prob_{k}" for k in categories]].max(axis=1)
    patches = pd.DataFrame(
        {
            "slide": slide_of_patch,
            "row": data.coords[rows, 0],
            "col": data.coords[rows, 1],
            "label": data.patch_label[rows],
            "mimic": data.mimic[rows],
        }
    )
    for k in categories:  # a model with one score per patch scores every category with it
        patches[f"score_{k}"] = scores[:, column[k] if scores.shape[1] > 1 else 0]
    patches["score"] = patches[[f"score_{k}" for k in categories]].max(axis=1)
    return slides, patches


def _auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def _normalised(patches: pd.DataFrame, column: str) -> np.ndarray:
    group = patches.groupby("slide")[column]
    lo, hi = group.transform("min"), group.transform("max")
    return ((patches[column] - lo) / (hi - lo).where(hi > lo, 1.0)).to_numpy()


def _categories(slides: pd.DataFrame) -> list[int]:
    """The positive categories of a slide table (``holds_<k>`` columns; a binary table from before: 1)."""
    found = sorted(int(c.split("_")[1]) for c in slides.columns if c.startswith("holds_"))
    return found or [1]


def _slide_metrics(slides: pd.DataFrame, categories: list[int]) -> dict[str, float]:
    holds = {
        k: (slides[f"holds_{k}"] if f"holds_{k}" in slides else (slides["label"] == k).astype(int)) for k in categories
    }
    prob = {k: slides[f"prob_{k}"] if f"prob_{k}" in slides else slides["prob"] for k in categories}
    if "prob_0" in slides:  # multiclass: one category per slide, normal among them
        from sklearn.metrics import roc_auc_score

        columns = ["prob_0", *(f"prob_{k}" for k in categories)]
        p = slides[columns].to_numpy(float)
        label = slides["label"].to_numpy(int)
        present = np.unique(label)
        if len(present) > 2:
            normalised = p[:, present] / p[:, present].sum(1, keepdims=True)
            auc = float(roc_auc_score(label, normalised, multi_class="ovr", labels=present))
        else:
            auc = _auc(label == present[-1], p[:, present[-1]])
        return {"slide_auc": auc, "slide_accuracy": float((p.argmax(1) == label).mean())}
    aucs = [_auc(holds[k], prob[k]) for k in categories]
    accuracy = np.mean([((prob[k] > 0.5).astype(int) == holds[k]).mean() for k in categories])
    return {"slide_auc": float(np.nanmean(aucs)) if not np.isnan(aucs).all() else float("nan"),
            "slide_accuracy": float(accuracy)}  # fmt: skip


def localisation_metrics(slides: pd.DataFrame, patches: pd.DataFrame) -> dict[str, float]:
    """The metrics of the module docstring from one model's slide and patch tables. Patches labelled -1
    (inside a Camelyon16 exclusion polygon) count in the per-slide normalisation but are not scored."""
    categories = _categories(slides)
    label = patches["label"].to_numpy()
    scored = label >= 0
    out = _slide_metrics(slides, categories)
    per: dict[str, list[float]] = {"patch_auc": [], "precision": [], "recall": [], "f1": []}
    evidence_all, truth_all, strongest = [], [], np.zeros(len(patches))
    for k in categories:
        column = f"score_{k}" if f"score_{k}" in patches else "score"
        normalised = _normalised(patches, column)
        holds = slides[f"holds_{k}"] if f"holds_{k}" in slides else (slides["label"] == k).astype(int)
        on = patches["slide"].isin(slides.loc[holds.to_numpy() == 1, "slide"]).to_numpy() & scored
        called = normalised >= 0.5
        tp = int((called & (label == k) & on).sum())
        precision = tp / max(1, int((called & on).sum()))
        recall = tp / max(1, int(((label == k) & on).sum()))
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        auc = _auc(label[on] == k, normalised[on])
        for name, value in (("patch_auc", auc), ("precision", precision), ("recall", recall), ("f1", f1)):
            per[name].append(value)
        if len(categories) > 1:
            out[f"patch_auc_{k}"], out[f"f1_{k}"] = auc, f1
        prob_k = slides[f"prob_{k}"] if f"prob_{k}" in slides else slides["prob"]
        evidence = normalised * patches["slide"].map(slides.set_index("slide")[prob_k.name]).to_numpy()
        evidence_all.append(evidence[scored])
        truth_all.append(label[scored] == k)
        strongest = np.maximum(strongest, evidence)
    out |= {name: float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
            for name, values in per.items()}  # fmt: skip
    out["patch_auc_all"] = _auc(np.concatenate(truth_all), np.concatenate(evidence_all))
    versus_mimic = ((label > 0) | (patches["mimic"].to_numpy() == 1)) & scored
    out["mimic_auc"] = _auc(label[versus_mimic] > 0, strongest[versus_mimic])
    return out


METRICS = ("slide_auc", "slide_accuracy", "patch_auc", "patch_auc_all", "precision", "recall", "f1", "mimic_auc")


def summarise_spatial(metrics: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and standard error over repeats per model; rows in ``models`` order (the config's), else in
    order of appearance."""
    if models is not None:
        metrics = metrics.assign(model=pd.Categorical(metrics["model"], categories=list(models), ordered=True))
    group = metrics.groupby("model", sort=models is not None, observed=True)
    out = {"model": [str(m) for m in group.size().index]}
    per_category = [c for c in metrics.columns if c.startswith(("patch_auc_", "f1_")) and c != "patch_auc_all"]
    for metric in [*METRICS, *per_category]:
        out[metric] = group[metric].mean().to_numpy()
        out[f"{metric}_se"] = (group[metric].std(ddof=1) / np.sqrt(group[metric].count())).fillna(0.0).to_numpy()
    out["n_repeats"] = group.size().to_numpy()
    return pd.DataFrame(out)


def patch_expectation(summary: pd.DataFrame, families: Mapping[str, str]) -> pd.DataFrame:
    """The paper's Fig. 1c claim, tested not assumed: each SMMILe model's macro patch AUC against each
    attention baseline's (``families``: model -> the registry's family, ``spatial`` for SMMILe; ``mil``
    for the neural MIL models and ``mixmil``, whose instance scores are attention weights too), the
    difference, its standard error (the two means' s.e. combined) and whether SMMILe is higher by more
    than twice that."""
    rows = summary.set_index("model")
    out = []
    for smmile in (m for m in rows.index if families.get(m) == "spatial"):
        for baseline in (m for m in rows.index if families.get(m) in ("mil", "mixmil")):
            diff = rows.loc[smmile, "patch_auc"] - rows.loc[baseline, "patch_auc"]
            se = float(np.hypot(rows.loc[smmile, "patch_auc_se"], rows.loc[baseline, "patch_auc_se"]))
            out.append({"smmile": smmile, "baseline": baseline, "smmile_patch_auc": rows.loc[smmile, "patch_auc"],
                        "baseline_patch_auc": rows.loc[baseline, "patch_auc"], "difference": diff, "se": se,
                        "smmile_higher": bool(diff > 2 * se)})  # fmt: skip
    columns = ["smmile", "baseline", "smmile_patch_auc", "baseline_patch_auc", "difference", "se", "smmile_higher"]
    return pd.DataFrame(out, columns=columns)


def spatial_maps(patches: Mapping[str, pd.DataFrame], n_slides: int = 4):
    """A figure: for ``n_slides`` positive test slides spread over the range of tumour sizes, the true
    mask and each model's min-max-normalised patch scores on the grid."""
    import matplotlib.pyplot as plt

    first = next(iter(patches.values()))
    tumour = first[first["label"] > 0].groupby("slide").size()
    positive = tumour.sort_values()
    chosen = list(positive.index[np.linspace(0, len(positive) - 1, min(n_slides, len(positive))).astype(int)])
    columns = ["truth", *patches]
    n_types = max(1, int(first["label"].max()))
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
            truth = name == "truth" and n_types > 1  # tumour types: one colour each
            ax.imshow(grid, cmap="tab10" if truth else "magma", vmin=0, vmax=9 if truth else 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"slide {slide}\n{int(tumour[slide])} tumour patches", fontsize=8)
    fig.tight_layout()
    return fig
