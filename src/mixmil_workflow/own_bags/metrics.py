"""Metrics of bring-your-own-bags fits, per likelihood, and their mean ± s.e. over repeats and folds.

Bernoulli: AUC, accuracy and F1 (of the positive class, at probability 0.5), balanced accuracy, log loss.
Categorical: macro one-vs-rest AUC, accuracy, balanced accuracy, macro F1, log loss.
Binomial and Gaussian: Spearman and Pearson correlation of the expected value with the label, R².
Bags without a label (kept as missing labels) are never scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = {
    "bernoulli": ("auc", "accuracy", "balanced_accuracy", "f1", "log_loss"),
    "categorical": ("auc_macro", "accuracy", "balanced_accuracy", "f1_macro", "log_loss"),
    "binomial": ("spearman", "pearson", "r2"),
    "gaussian": ("spearman", "pearson", "r2"),
}
PRIMARY_METRIC = {"binomial": "spearman", "gaussian": "spearman", "bernoulli": "auc", "categorical": "auc_macro"}
HIGHER_IS_BETTER = {"log_loss": False}


def _probabilities(frame: pd.DataFrame) -> np.ndarray:
    columns = [c for c in frame.columns if c.startswith("prob_")]
    return frame[columns].to_numpy(float)


def score_predictions(frame: pd.DataFrame, likelihood: str) -> dict[str, float]:
    """Metrics of one set of held-out predictions (columns of the out-of-fold file); NaN where a metric is
    undefined (e.g. AUC of a fold holding one class)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn import metrics

    frame = frame[frame["y"].notna()]
    y = frame["y"].to_numpy()
    out = dict.fromkeys(METRICS[likelihood], np.nan)
    if len(frame) < 2:
        return out
    if likelihood == "bernoulli":
        p = frame["probability"].to_numpy(float)
        y = y.astype(int)
        predicted = (p >= 0.5).astype(int)
        out |= {
            "accuracy": metrics.accuracy_score(y, predicted),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, predicted),
            "f1": metrics.f1_score(y, predicted, zero_division=0.0),
            "log_loss": metrics.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]),
        }
        if len(np.unique(y)) == 2:
            out["auc"] = metrics.roc_auc_score(y, p)
    elif likelihood == "categorical":
        probs = _probabilities(frame)
        y = y.astype(int)
        predicted = probs.argmax(1)
        labels = np.arange(probs.shape[1])
        out |= {
            "accuracy": metrics.accuracy_score(y, predicted),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, predicted),
            "f1_macro": metrics.f1_score(y, predicted, average="macro", labels=np.unique(y), zero_division=0.0),
            "log_loss": metrics.log_loss(y, probs / probs.sum(1, keepdims=True), labels=labels),
        }
        present = np.unique(y)
        if len(present) >= 2:
            # macro AUC over the classes present (one-vs-rest), as scikit-learn's "ovr" averaging
            aucs = [metrics.roc_auc_score(y == c, probs[:, c]) for c in present]
            out["auc_macro"] = float(np.mean(aucs))
    else:
        expected = frame["expected"].to_numpy(float)
        y = y.astype(float)
        if np.ptp(expected) > 0 and np.ptp(y) > 0:
            out["spearman"] = spearmanr(expected, y).statistic
            out["pearson"] = pearsonr(expected, y).statistic
        out["r2"] = metrics.r2_score(y, expected)
    return {k: float(v) for k, v in out.items()}


def fold_metrics(predictions: pd.DataFrame, likelihood: str) -> pd.DataFrame:
    """One row per (repeat, fold) with every metric of its held-out bags, and one per repeat (``fold``
    = "all") with the metrics of the repeat's pooled out-of-fold predictions (stacked CV)."""
    rows = []
    for (repeat, fold), group in predictions.groupby(["repeat", "fold"], sort=True):
        rows.append(
            {"repeat": repeat, "fold": str(fold), "n_bags": int(group["y"].notna().sum())}
            | score_predictions(group, likelihood)
        )
    for repeat, group in predictions.groupby("repeat", sort=True):
        rows.append(
            {"repeat": repeat, "fold": "all", "n_bags": int(group["y"].notna().sum())}
            | score_predictions(group, likelihood)
        )
    return pd.DataFrame(rows)


def summarise(per_fold: pd.DataFrame, likelihood: str) -> dict[str, float | int | str]:
    """Mean ± standard error of every metric. With several repeats: over the repeats' pooled out-of-fold
    values (the field's repeated-CV figure); with one repeat: over its folds (``se_over`` says which)."""
    pooled = per_fold[per_fold["fold"] == "all"]
    folds = per_fold[per_fold["fold"] != "all"]
    units, over = (pooled, "repeats") if len(pooled) > 1 else (folds, "folds")
    out: dict[str, float | int | str] = {
        "n_repeats": len(pooled),
        "n_folds": int(folds.groupby("repeat").size().iloc[0]),
    }
    for metric in METRICS[likelihood]:
        out[metric] = float(pooled[metric].mean())
        values = units[metric].dropna()
        out[f"{metric}_se"] = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else np.nan
    out["se_over"] = over
    return out
