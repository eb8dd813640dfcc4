"""MoMIL's training add-ons (Pati et al., MICCAI 2025, Sections 2.2-2.3), on top of the network in
:mod:`mixmil_workflow.models.momil`.

* Biological similarity (optional, first): a user-supplied task-similarity table (e.g. STRING combined
  scores between the assays' targets, scaled to [0, 1]); secondary tasks scoring at least ``th_sim`` with a
  primary task stay candidates. Without a table every secondary task is a candidate.

* Assay performance threshold: secondary tasks join a primary task's model only if their single-task
  validation ROC-AUC reaches ``th_perf`` (the paper: 70 %).
* Assay influence: a logistic regression predicts a primary task's labels from another task's single-task
  head embeddings of the same bags; its validation ROC-AUC is the influence score, and tasks reaching
  ``th_inf`` times the primary task's self-influence are kept (the paper: 0.9).
* Adaptive label imputation: from the validation probabilities of the *correctly classified* bags of
  each task, thresholds at the ``p``-th (positive) and ``(1 - p)``-th (negative) percentiles; secondary
  tasks use the stricter ``p + alpha`` and ``1 - p - alpha`` (the paper: p = 90 %, alpha = 5 %).
  Unlabelled training bags above the positive or below the negative threshold get that label, and the
  next round trains on observed plus imputed labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

SIMILARITY_COLUMNS = ("task_a", "task_b", "score")


class SimilarityTableError(ValueError):
    """A task-similarity table that cannot be used; the message names the file, field and fix."""


def read_task_similarity(path: str | Path, tasks: Sequence[str]) -> pd.DataFrame:
    """A symmetric (tasks x tasks) similarity matrix from a TSV with columns ``task_a``, ``task_b``,
    ``score`` (in [0, 1]; a pair listed once counts both ways; unlisted pairs score 0)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", dtype={"task_a": str, "task_b": str}, comment="#")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SimilarityTableError(f"{path}: cannot read the task-similarity table as TSV ({err})") from err
    absent = [c for c in SIMILARITY_COLUMNS if c not in table.columns]
    if absent:
        raise SimilarityTableError(
            f"{path}: missing column(s) {absent}; a task-similarity table has the tab-separated columns "
            f"{', '.join(SIMILARITY_COLUMNS)} (found {list(table.columns)})"
        )
    score = pd.to_numeric(table["score"], errors="coerce")
    bad = table.index[score.isna() | (score < 0) | (score > 1)]
    if len(bad):
        row = bad[0]
        raise SimilarityTableError(
            f"{path}, row {row + 2}, field score: {table['score'].iloc[row]!r} is not a number in [0, 1] "
            "(STRING combined scores run 0-1000: divide them by 1000)"
        )
    known = list(map(str, tasks))
    unknown = sorted((set(table["task_a"]) | set(table["task_b"])) - set(known))
    if unknown:
        raise SimilarityTableError(
            f"{path}: task(s) {unknown[:5]} in task_a / task_b are not tasks of this study; known: {known[:10]}"
            f"{' ...' if len(known) > 10 else ''}"
        )
    matrix = pd.DataFrame(0.0, index=known, columns=known)
    for a, b, value in zip(table["task_a"], table["task_b"], score, strict=True):
        matrix.loc[a, b] = matrix.loc[b, a] = max(matrix.loc[a, b], float(value))
    return matrix


def similarity_selection(
    similarity: pd.DataFrame, primaries: Sequence[str], candidates: Sequence[str], threshold: float = 0.7
) -> list[str]:
    """Candidate tasks whose similarity to at least one primary task reaches ``threshold`` (the default
    0.7 is STRING's "high confidence" cut-off)."""
    best = similarity.loc[list(candidates), list(primaries)].max(axis=1)
    return [t for t in candidates if best[t] >= threshold]


def performance_selection(validation_auc: Sequence[float], threshold: float = 0.7) -> np.ndarray:
    """Tasks (indices) whose single-task validation AUC is at least ``threshold``."""
    auc = np.asarray(validation_auc, dtype=float)
    return np.flatnonzero(np.nan_to_num(auc, nan=-np.inf) >= threshold)


def imputation_thresholds(
    probabilities: np.ndarray,
    labels: np.ndarray,
    secondary: np.ndarray | None = None,
    p: float = 0.9,
    alpha: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-task (positive, negative) probability thresholds from validation bags: ``probabilities`` and
    ``labels`` (bags, tasks), labels NaN where unobserved. Percentiles of the probabilities of the
    correctly classified observed bags (at 0.5); NaN where a task has none (nothing is imputed)."""
    probabilities, labels = np.asarray(probabilities, float), np.asarray(labels, float)
    n_tasks = labels.shape[1]
    secondary = np.zeros(n_tasks, dtype=bool) if secondary is None else np.asarray(secondary, dtype=bool)
    positive, negative = np.full(n_tasks, np.nan), np.full(n_tasks, np.nan)
    for t in range(n_tasks):
        observed = ~np.isnan(labels[:, t])
        correct = observed & ((probabilities[:, t] >= 0.5) == (labels[:, t] == 1))
        if not correct.any():
            continue
        level = p + alpha if secondary[t] else p
        values = probabilities[correct, t]
        positive[t] = np.percentile(values, 100 * level)
        negative[t] = np.percentile(values, 100 * (1 - level))
    return positive, negative


def impute_labels(labels: np.ndarray, probabilities: np.ndarray, positive: np.ndarray, negative: np.ndarray):
    """Observed labels kept; unobserved ones set to 1 above ``positive``, 0 below ``negative`` (per task),
    NaN otherwise. Returns the new labels and the mask of imputed entries."""
    labels, probabilities = np.asarray(labels, float), np.asarray(probabilities, float)
    out = labels.copy()
    missing = np.isnan(labels)
    with np.errstate(invalid="ignore"):  # NaN thresholds compare False: nothing imputed for that task
        pos = missing & (probabilities > positive[None, :])
        neg = missing & (probabilities < negative[None, :])
    out[pos] = 1.0
    out[neg & ~pos] = 0.0
    return out, (pos | neg)


def influence_score(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    validation_embeddings: np.ndarray,
    validation_labels: np.ndarray,
    seed: int = 0,
) -> float:
    """Validation ROC-AUC of a logistic regression from one task head's bag embeddings to another task's
    labels (bags with a label only). NaN when the validation bags hold a single class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = ~np.isnan(train_labels)
    validation = ~np.isnan(validation_labels)
    y_val = validation_labels[validation]
    if len(np.unique(train_labels[train])) < 2 or len(np.unique(y_val)) < 2:
        return float("nan")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(train_embeddings[train], train_labels[train])
    return float(roc_auc_score(y_val, model.predict_proba(validation_embeddings[validation])[:, 1]))


def influence_selection(scores: dict[int, float], primary: int, threshold: float = 0.9) -> list[int]:
    """Tasks whose influence on ``primary`` reaches ``threshold`` x its self-influence ``scores[primary]``
    (the primary task itself excluded)."""
    own = scores[primary]
    return [t for t, score in scores.items() if t != primary and np.isfinite(score) and score >= threshold * own]
