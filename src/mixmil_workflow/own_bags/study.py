"""Fits that hold out the bags of one fold of a prepared dataset, shared by the genetics and microscopy
branches (bring-your-own-bags datasets run through :mod:`mixmil_workflow.own_bags.crossval`).

A prepared dataset is two files written after every check passed: the instance matrix in bag order
(``.npy``, float32) and the bag table in the same order with ``n_instances`` and fold columns (``.tsv``).
Fold ``k`` holds out the bags with ``fold == k``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path, save_tsv_gz
from mixmil_workflow.own_bags.input import BagDataset, DatasetError, LabelSpec, prepare_label_column


def save_prepared(
    dataset: BagDataset,
    folds: np.ndarray | Mapping[str, np.ndarray],
    matrix_path: str | Path,
    table_path: str | Path,
    names_path: str | Path,
) -> None:
    """The checked instance matrix in bag order (.npy), the bag table with ``n_instances`` and the fold
    column(s) (an array: ``fold``; a mapping: its columns), and the instances' obs names in the same order
    (to map weights back to the AnnData). The gzip stream carries no timestamp: identical inputs give
    identical bytes."""
    with atomic_path(matrix_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, dataset.bags.x.numpy())
    columns = dict(folds) if isinstance(folds, Mapping) else {"fold": folds}
    table = dataset.table.assign(**columns, n_instances=dataset.bags.sizes.numpy())
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    save_tsv_gz(names_path, pd.DataFrame({"obs_name": dataset.instance_names}))


def load_prepared(matrix_path: str | Path, table_path: str | Path, id_column: str):
    import torch

    from mixmil_workflow.bags import Bags

    table = pd.read_csv(table_path, sep="\t", dtype={id_column: str})
    x = np.load(matrix_path)
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(table["n_instances"].to_numpy())]), dtype=torch.long)
    return Bags(torch.from_numpy(x), offsets), table


class _FoldFit(NamedTuple):
    model: object
    held_out: np.ndarray
    test_bags: object
    test_covariates: np.ndarray | None
    seconds: float


def _fit_outside_fold(
    spec: Mapping, bags, table: pd.DataFrame, y: np.ndarray, covariates: list[str], fold: int, seed: int,
    device: str, likelihood: str, n_trials: int | None, save_to: str | Path | None = None,
) -> _FoldFit:  # fmt: skip
    """Build the configured model and fit it on the bags outside ``fold`` (timed; saved to ``save_to``
    when given)."""
    from mixmil_workflow.models.registry import build
    from mixmil_workflow.studies.engine import fit_timed

    cov = table[covariates].to_numpy(float) if covariates else None
    folds = table["fold"].to_numpy()
    held_out, train = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
    if len(held_out) == 0 or len(train) < 2:
        raise DatasetError(f"fold {fold}: {len(held_out)} held-out and {len(train)} training bags; need both")
    model = build(spec, seed, device, likelihood=likelihood, n_trials=n_trials)
    seconds = fit_timed(model, bags.subset(train), y[train], None if cov is None else cov[train], save_to=save_to)
    return _FoldFit(model, held_out, bags.subset(held_out), None if cov is None else cov[held_out], seconds)


def _instance_record(weights: np.ndarray | None, bag_ids: np.ndarray, test_bags, model) -> dict[str, np.ndarray]:
    """The held-out bags' instance scores as saved per fold (empty ``weights`` for models without them),
    with the fit's training loss per epoch (``loss_history``; empty for closed-form fits)."""
    return {
        "bags": bag_ids.astype(str),
        "offsets": test_bags.offsets.numpy(),
        "weights": np.zeros(0, dtype=np.float32) if weights is None else weights.astype(np.float32),
        "loss_history": model.loss_history,
    }


def fit_fold(
    spec: Mapping,
    bags,
    table: pd.DataFrame,
    label: LabelSpec,
    covariates: list[str],
    fold: int,
    seed: int,
    id_column: str,
    device: str = "cpu",
    save_to: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fit on the bags outside ``fold`` (the model saved to ``save_to`` when given), predict the bags in it.
    Returns one row per held-out bag (``bag``, ``fold``, ``y`` (model-ready label), ``score`` (linear
    predictor, or the predicted class), ``train_seconds``; categorical: ``prob_<class>`` columns) and the
    held-out bags' instance weights."""
    y, classes = prepare_label_column(table[label.column], label, "the prepared bag table")
    fitted = _fit_outside_fold(
        spec, bags, table, y, covariates, fold, seed, device, label.likelihood, label.n_trials, save_to
    )
    model, held_out, test_bags, test_cov, seconds = fitted
    out = pd.DataFrame({"bag": table[id_column].to_numpy()[held_out], "fold": fold, "y": y[held_out]})
    prediction, weights = model.predict_with_instance_scores(test_bags, test_cov)
    eta, mean = prediction.linear_predictor, prediction.mean
    if label.likelihood == "categorical":
        out["score"] = np.asarray(mean).argmax(1)
        for k, name in enumerate(classes):
            out[f"prob_{name}"] = np.asarray(mean)[:, k]
    else:
        out["score"] = np.asarray(eta).reshape(len(held_out), -1)[:, 0]
    instance = _instance_record(weights, out["bag"].to_numpy(), test_bags, model)
    return out.assign(train_seconds=seconds), instance


def fit_fold_outputs(
    spec: Mapping,
    bags,
    table: pd.DataFrame,
    labels: Sequence[LabelSpec],
    covariates: list[str],
    fold: int,
    seed: int,
    id_column: str,
    device: str = "cpu",
    save_to: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Like :func:`fit_fold` for several labels of one (non-categorical) likelihood, fitted at once as the
    P outputs of one model (MixMIL's tensorised outputs; P stacked networks or trees for the baselines).
    Returns long predictions (``bag``, ``fold``, ``label``, ``y``, ``score``, ``train_seconds``) and the
    held-out bags' instance weights (instances, P), outputs in the order of ``labels``."""
    kinds = {(s.likelihood, s.n_trials) for s in labels}
    if len(kinds) != 1 or labels[0].likelihood == "categorical":
        raise DatasetError(f"outputs fitted at once need one non-categorical likelihood; got {sorted(kinds)}")
    y = np.column_stack([prepare_label_column(table[s.column], s, "the prepared bag table")[0] for s in labels])
    likelihood, n_trials = labels[0].likelihood, labels[0].n_trials
    fitted = _fit_outside_fold(spec, bags, table, y, covariates, fold, seed, device, likelihood, n_trials, save_to)
    model, held_out, test_bags, test_cov, seconds = fitted
    prediction, weights = model.predict_with_instance_scores(test_bags, test_cov)
    eta = np.asarray(prediction.linear_predictor).reshape(len(held_out), len(labels))
    bag_ids = table[id_column].to_numpy()[held_out]
    out = pd.concat(
        [
            pd.DataFrame({"bag": bag_ids, "fold": fold, "label": s.column, "y": y[held_out, p], "score": eta[:, p]})
            for p, s in enumerate(labels)
        ],
        ignore_index=True,
    )
    instance = _instance_record(weights, bag_ids, test_bags, model)
    instance["labels"] = np.array([s.column for s in labels])
    return out.assign(train_seconds=seconds), instance
