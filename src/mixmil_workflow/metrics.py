"""Evaluation metrics of the simulation study (paper Section 4.2)."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score


def spearman_per_output(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Spearman correlation between predicted and true bag effects for each output, shape (P,)."""
    pred, truth = np.atleast_2d(pred.T).T, np.atleast_2d(truth.T).T
    return np.array([spearmanr(pred[:, p], truth[:, p]).statistic for p in range(truth.shape[1])])


def retrieval_auc_per_output(weights: np.ndarray, true_weights: np.ndarray, top_fraction: float = 0.1) -> np.ndarray:
    """Instance-retrieval ROC-AUC per output. Positives: instances whose true weight is in the top
    ``top_fraction`` of all test instances pooled over bags; scores: predicted weights.

    ``weights`` and ``true_weights`` are (instances, P) over the same pooled instances.
    """
    aucs = []
    for p in range(true_weights.shape[1]):
        positive = true_weights[:, p] > np.quantile(true_weights[:, p], 1 - top_fraction)
        aucs.append(roc_auc_score(positive, weights[:, p]))
    return np.array(aucs)


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error (sample sd / sqrt(n); 0 for a single value)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.0
    return float(values.mean()), float(se)


def format_mean_se(mean: float, se: float = float("nan"), digits: int = 3, missing: str = "–") -> str:
    """ "mean ± s.e." as every table of the workflow shows it: the mean alone without a finite s.e.,
    ``missing`` without a finite mean."""
    if not np.isfinite(mean):
        return missing
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if np.isfinite(se) else "")
