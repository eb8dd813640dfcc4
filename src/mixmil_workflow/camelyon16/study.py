"""Camelyon16 (paper Section 4.4, Table 3): train one model with one seed, predict, and summarise.

MixMIL is a Bernoulli model with an intercept as its only fixed effect (no covariates exist for this
dataset); the baselines fit the same labels with BCE. Slide scores are logits (the ranking AUC uses);
instance scores are attention weights or instance logits, kept per slide for heatmaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.camelyon16.preprocess import SplitBags
from mixmil_workflow.metrics import format_mean_se, mean_and_se
from mixmil_workflow.models.registry import build
from mixmil_workflow.studies.engine import fit_timed

EVALUATED_SPLITS = ("validation", "test")


def _scores(model, split: SplitBags) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(slide logits, slide probabilities, instance scores or None) of one split."""
    prediction, instance = model.predict_with_instance_scores(split.bags)
    return prediction.linear_predictor[:, 0], prediction.mean[:, 0], None if instance is None else instance[:, 0]


def run_model(
    spec: Mapping, splits: Mapping[str, SplitBags], seed: int, device: str = "cpu", save_to: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fit on the ``train`` slides (the model saved to ``save_to`` when given); predict the validation and
    test slides.

    Returns one row per evaluated slide (``slide``, ``split``, ``label``, ``score``, ``probability``,
    ``train_seconds``) and the test slides' instance scores (``slides``, ``offsets``, ``first_row``,
    ``scores``; empty ``scores`` for models without them)."""
    train = splits["train"]
    model = build(spec, seed, device, likelihood="binomial", n_trials=1)
    train_seconds = fit_timed(model, train.bags, train.labels.astype(np.float32), save_to=save_to)
    rows, instance = [], {}
    for name in EVALUATED_SPLITS:
        if name not in splits:
            continue
        split = splits[name]
        score, probability, scores = _scores(model, split)
        rows.append(
            pd.DataFrame(
                {
                    "slide": split.slides,
                    "split": name,
                    "label": split.labels,
                    "score": score,
                    "probability": probability,
                }
            )
        )
        if name == "test":
            instance = {
                "slides": split.slides.astype(str),
                "offsets": split.bags.offsets.cpu().numpy(),
                "first_row": split.first_row,
                "scores": np.zeros(0, dtype=np.float32) if scores is None else scores.astype(np.float32),
                "loss_history": model.loss_history,  # training loss per epoch (the report's training curves)
            }
    predictions = pd.concat(rows, ignore_index=True).assign(train_seconds=train_seconds)
    return predictions, instance


def slide_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """AUC and Spearman(label, score) per evaluated split (the reference notebook's two numbers)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    out = {}
    for name, part in predictions.groupby("split"):
        both = part["label"].nunique() == 2
        out[f"{name}_auc"] = roc_auc_score(part["label"], part["score"]) if both else float("nan")
        out[f"{name}_spearman"] = spearmanr(part["label"], part["score"]).statistic if both else float("nan")
        out[f"{name}_accuracy"] = float(((part["probability"] > 0.5) == part["label"].astype(bool)).mean())
    return out


def run_table(runs: Iterable[tuple[str, str, int, str | Path]]) -> pd.DataFrame:
    """One row per (model, seed): ``runs`` gives (model, model type, seed index, predictions TSV)."""
    rows = []
    for model, kind, seed, path in runs:
        predictions = pd.read_csv(path, sep="\t")
        rows.append(
            {"model": model, "type": kind, "seed": seed, **slide_metrics(predictions)}
            | {"train_seconds": float(predictions["train_seconds"].iloc[0])}
        )
    return pd.DataFrame(rows)


def table3(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3: test AUC mean and standard error over training seeds per model (and the same for the
    test Spearman and the validation AUC). Returns the numeric table and its Markdown layout."""
    rows = []
    for (model, kind), group in runs.groupby(["model", "type"], sort=False):
        row = {"model": model, "type": kind, "n_seeds": len(group)}
        for metric in ("test_auc", "test_spearman", "validation_auc", "test_accuracy"):
            if metric in group:
                row[f"{metric}_mean"], row[f"{metric}_se"] = mean_and_se(group[metric].to_numpy())
        row["train_seconds_mean"] = group["train_seconds"].mean()
        rows.append(row)
    numeric = pd.DataFrame(rows)

    def formatted(metric: str) -> list[str]:
        if f"{metric}_mean" not in numeric:
            return ["–"] * len(numeric)
        return [format_mean_se(m, s) for m, s in zip(numeric[f"{metric}_mean"], numeric[f"{metric}_se"], strict=True)]

    display = pd.DataFrame(
        {
            "model": numeric["model"],
            "test AUC": formatted("test_auc"),
            "test Spearman": formatted("test_spearman"),
            "validation AUC": formatted("validation_auc"),
            "seeds": numeric["n_seeds"],
            "train s": numeric["train_seconds_mean"].round(1),
        }
    )
    return numeric, display


def instance_auc(instance_files: Iterable[tuple[str, int, str | Path]], truth: pd.DataFrame) -> pd.DataFrame:
    """Demo only (the real archive has no patch labels): ROC-AUC of the instance scores for the known
    tumour patches of the tumour test slides, within slides pooled, per model and seed."""
    from sklearn.metrics import roc_auc_score

    truth = truth.set_index(["slide", "patch"])["tumor"]
    rows = []
    for model, seed, path in instance_files:
        with np.load(path) as f:
            if f["scores"].size == 0:
                continue
            slides, offsets, scores = f["slides"], f["offsets"], f["scores"]
        labels, values = [], []
        for k, slide in enumerate(slides):
            lo, hi = offsets[k], offsets[k + 1]
            patch_truth = truth.loc[slide].reindex(np.arange(hi - lo)).to_numpy()
            if patch_truth.any():  # tumour slides only: which patches carry the tumour
                labels.append(patch_truth)
                # Rank within the slide: attention weights are only comparable inside one bag.
                values.append(pd.Series(scores[lo:hi]).rank(pct=True).to_numpy())
        if labels:
            rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "instance_auc": roc_auc_score(np.concatenate(labels), np.concatenate(values)),
                }
            )
    return pd.DataFrame(rows, columns=["model", "seed", "instance_auc"])


def camelyon16_models(section: Mapping, models: Mapping) -> list[str]:
    """The models the Camelyon16 branch trains (none when it is not activated), checked against the
    ``models:`` definitions and the types that fit Bernoulli slide labels on bags of patches."""
    if not section.get("activate", False):
        return []
    names = list(section.get("models") or [])
    if not names:
        raise ValueError("config: camelyon16.models is empty; list the models to train (names under models:)")
    from mixmil_workflow.models.registry import model_types
    from mixmil_workflow.workflow.config_checks import check_model_names

    allowed = model_types(study="camelyon16")
    return check_model_names("camelyon16.models", names, models, allowed, purpose="Camelyon16 trains the MIL models")


def validation_loss(predictions: pd.DataFrame) -> float:
    """Mean binary cross-entropy of the validation slides' probabilities (the paper's selection
    criterion for Table C.8, App. C.3)."""
    part = predictions[predictions["split"] == "validation"]
    if part.empty:
        raise ValueError("no validation slides: a sweep needs camelyon16.validation_fraction > 0")
    p = np.clip(part["probability"].to_numpy(float), 1e-7, 1 - 1e-7)
    y = part["label"].to_numpy(float)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def summarise_camelyon16_sweep(
    runs: Iterable[tuple[str, int, str | Path]], combos: Mapping[str, list[dict]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs``: (model, combination, predictions TSV). Returns the grid (Table C.7 analogue: every
    combination with its validation loss and AUC) and the selection (Table C.8 analogue: the lowest
    validation loss per model; the validation AUC breaks ties)."""
    from mixmil_workflow.studies.sweep import SWEEPABLE

    rows = []
    for model, combo, path in runs:
        predictions = pd.read_csv(path, sep="\t")
        metrics = slide_metrics(predictions[predictions["split"] == "validation"])
        varied = {k: combos[model][combo][k] for k in SWEEPABLE if k in combos[model][combo]}
        rows.append(
            {"model": model, "combination": combo, **varied, "validation_loss": validation_loss(predictions)}
            | {"validation_auc": metrics["validation_auc"]}
        )
    grid = pd.DataFrame(rows)
    ranked = grid.sort_values(["model", "validation_loss", "validation_auc"], ascending=[True, True, False])
    best = ranked.groupby("model", sort=False).head(1)
    order = {m: k for k, m in enumerate(dict.fromkeys(grid["model"]))}
    return grid, best.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)


def strip_selection(
    instance_files: Mapping[tuple[str, int], str | Path], predictions: Mapping[tuple[str, int], pd.DataFrame], n: int
) -> tuple[dict[str, str | Path], list[str]]:
    """What the instance-score strips show: each model's first training seed, on the first ``n`` tumour
    test slides by name."""
    first = min(seed for _, seed in instance_files)
    files = {model: path for (model, seed), path in instance_files.items() if seed == first}
    test = next(iter(predictions.values())).query("split == 'test' and label == 1")
    return files, sorted(test["slide"])[:n]
