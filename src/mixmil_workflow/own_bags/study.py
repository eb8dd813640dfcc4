"""Bring-your-own-bags studies: protocols (k-fold stacked CV, a given split, held-out groups), one fit
per label x model x fold, out-of-fold evaluation and the comparison table.

A prepared dataset is two files written by the ``prepare_dataset`` rule after every check passed: the
instance matrix in bag order (``.npy``, float32) and the bag table in the same order with ``fold`` and
``n_instances`` columns (``.tsv``). Fold ``k`` holds out the bags with ``fold == k``; with a given split
the test bags are fold 0 and the training bags fold -1 (never held out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path
from mixmil_workflow.own_bags.input import BagDataset, DatasetError, LabelSpec, prepare_label_column, stacked_folds

PROTOCOLS = ("kfold", "split", "groups")


def protocol_folds(protocol: Mapping) -> list[int]:
    """The held-out folds a protocol fits: 0..k-1, or [0] (the test bags) for a given split."""
    return [0] if protocol["kind"] == "split" else list(range(protocol.get("n_folds", 5)))


def assign_folds(table: pd.DataFrame, protocol: Mapping, seed: int, table_name: str = "the bag table") -> np.ndarray:
    kind = protocol["kind"]
    if kind == "kfold":
        if protocol.get("fold_column"):
            return _given_folds(table, protocol["fold_column"], protocol.get("n_folds", 5), table_name)
        return stacked_folds(len(table), protocol.get("n_folds", 5), seed)
    if kind == "groups":
        column = protocol.get("group_column")
        if not column or column not in table.columns:
            raise DatasetError(
                f"{table_name}: protocol 'groups' needs group_column, a column of the table ({column!r})"
            )
        groups = table[column].astype(str).to_numpy()
        return stacked_folds(len(table), protocol.get("n_folds", 5), seed, groups=groups)
    if kind == "split":
        column = protocol.get("split_column", "split")
        if column not in table.columns:
            raise DatasetError(f"{table_name}: protocol 'split' needs the column {column!r} (values train/test)")
        values = table[column].astype(str)
        bad = sorted(set(values) - {"train", "test"})
        if bad:
            raise DatasetError(f"{table_name}, split column {column!r}: values {bad[:5]} are not 'train' or 'test'")
        if not (values == "train").any() or not (values == "test").any():
            raise DatasetError(f"{table_name}, split column {column!r}: needs both train and test bags")
        return np.where(values == "test", 0, -1)
    raise DatasetError(f"protocol kind must be one of {PROTOCOLS}, got {kind!r}")


def _given_folds(table: pd.DataFrame, column: str, n_folds: int, table_name: str) -> np.ndarray:
    if column not in table.columns:
        raise DatasetError(f"{table_name}: no fold column {column!r}")
    folds = pd.to_numeric(table[column], errors="coerce")
    if folds.isna().any() or not folds.isin(range(n_folds)).all():
        raise DatasetError(f"{table_name}, fold column {column!r}: values must be integers 0..{n_folds - 1}")
    missing = sorted(set(range(n_folds)) - set(folds.astype(int)))
    if missing:
        raise DatasetError(f"{table_name}, fold column {column!r}: folds {missing} have no bags")
    return folds.astype(int).to_numpy()


def save_prepared(
    dataset: BagDataset, folds: np.ndarray, matrix_path: str | Path, table_path: str | Path, names_path: str | Path
) -> None:
    """The checked instance matrix in bag order (.npy), the bag table with ``fold`` and ``n_instances``,
    and the instances' obs names in the same order (to map weights back to the AnnData)."""
    with atomic_path(matrix_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, dataset.bags.x.numpy())
    table = dataset.table.assign(fold=folds, n_instances=dataset.bags.sizes.numpy())
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    with atomic_path(names_path) as tmp:
        pd.DataFrame({"obs_name": dataset.instance_names}).to_csv(tmp, sep="\t", index=False, compression="gzip")


def load_prepared(matrix_path: str | Path, table_path: str | Path, id_column: str):
    import torch

    from mixmil_workflow.bags import Bags

    table = pd.read_csv(table_path, sep="\t", dtype={id_column: str})
    x = np.load(matrix_path)
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(table["n_instances"].to_numpy())]), dtype=torch.long)
    return Bags(torch.from_numpy(x), offsets), table


def check_models(dataset_name: str, labels: Mapping[str, LabelSpec], model_names: Iterable[str], models: Mapping):
    """Config check at parse time: every model defined and able to fit every label's likelihood."""
    from mixmil_workflow.models.registry import check_likelihood, model_types
    from mixmil_workflow.workflow.config_checks import check_model_names

    field = f"datasets.{dataset_name}.models"
    allowed = model_types(study="own_bags")
    for name in check_model_names(field, model_names, models, allowed, purpose="datasets train"):
        for label, spec in labels.items():
            check_likelihood(f"datasets.{dataset_name}", name, models[name], spec.likelihood, f"label {label!r}")


class _FoldFit(NamedTuple):
    model: object
    held_out: np.ndarray
    test_bags: object
    test_covariates: np.ndarray | None
    seconds: float


def _fit_outside_fold(
    spec: Mapping, bags, table: pd.DataFrame, y: np.ndarray, covariates: list[str], fold: int, seed: int,
    device: str, likelihood: str, n_trials: int | None,
) -> _FoldFit:  # fmt: skip
    """Build the configured model and fit it on the bags outside ``fold`` (timed)."""
    from mixmil_workflow.models.registry import build
    from mixmil_workflow.studies.engine import fit_timed

    cov = table[covariates].to_numpy(float) if covariates else None
    folds = table["fold"].to_numpy()
    held_out, train = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
    if len(held_out) == 0 or len(train) < 2:
        raise DatasetError(f"fold {fold}: {len(held_out)} held-out and {len(train)} training bags; need both")
    model = build(spec, seed, device, likelihood=likelihood, n_trials=n_trials)
    seconds = fit_timed(model, bags.subset(train), y[train], None if cov is None else cov[train])
    return _FoldFit(model, held_out, bags.subset(held_out), None if cov is None else cov[held_out], seconds)


def _instance_record(model, bag_ids: np.ndarray, test_bags, test_cov) -> dict[str, np.ndarray]:
    """The held-out bags' instance scores as saved per fold (empty ``weights`` for models without them)."""
    weights = model.instance_scores(test_bags, test_cov)
    return {
        "bags": bag_ids.astype(str),
        "offsets": test_bags.offsets.numpy(),
        "weights": np.zeros(0, dtype=np.float32) if weights is None else weights.astype(np.float32),
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
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fit on the bags outside ``fold``, predict the bags in it. Returns one row per held-out bag
    (``bag``, ``fold``, ``y`` (model-ready label), ``score`` (linear predictor, or the predicted class),
    ``train_seconds``; categorical: ``prob_<class>`` columns) and the held-out bags' instance weights."""
    y, classes = prepare_label_column(table[label.column], label, "the prepared bag table")
    fitted = _fit_outside_fold(spec, bags, table, y, covariates, fold, seed, device, label.likelihood, label.n_trials)
    model, held_out, test_bags, test_cov, seconds = fitted
    out = pd.DataFrame({"bag": table[id_column].to_numpy()[held_out], "fold": fold, "y": y[held_out]})
    prediction = model.predict(test_bags, test_cov)
    eta, mean = prediction.linear_predictor, prediction.mean
    if label.likelihood == "categorical":
        out["score"] = np.asarray(mean).argmax(1)
        for k, name in enumerate(classes):
            out[f"prob_{name}"] = np.asarray(mean)[:, k]
    else:
        out["score"] = np.asarray(eta).reshape(len(held_out), -1)[:, 0]
    instance = _instance_record(model, out["bag"].to_numpy(), test_bags, test_cov)
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
    fitted = _fit_outside_fold(spec, bags, table, y, covariates, fold, seed, device, likelihood, n_trials)
    model, held_out, test_bags, test_cov, seconds = fitted
    eta = np.asarray(model.predict(test_bags, test_cov).linear_predictor).reshape(len(held_out), len(labels))
    bag_ids = table[id_column].to_numpy()[held_out]
    out = pd.concat(
        [
            pd.DataFrame({"bag": bag_ids, "fold": fold, "label": s.column, "y": y[held_out, p], "score": eta[:, p]})
            for p, s in enumerate(labels)
        ],
        ignore_index=True,
    )
    instance = _instance_record(model, bag_ids, test_bags, test_cov)
    instance["labels"] = np.array([s.column for s in labels])
    return out.assign(train_seconds=seconds), instance


def label_metrics(predictions: pd.DataFrame, likelihood: str) -> dict[str, float]:
    """Out-of-fold metrics of one label and model: Spearman (and AUC for Bernoulli) of the score with the
    label; balanced accuracy and F1 (macro) for categorical labels."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    y, score = predictions["y"].to_numpy(), predictions["score"].to_numpy()
    if likelihood == "categorical":
        return {
            "balanced_accuracy": balanced_accuracy_score(y, score),
            "f1_macro": f1_score(y, score, average="macro"),
            "accuracy": float((y == score).mean()),
        }
    out = {"spearman": spearmanr(score, y).statistic, "pearson": pearsonr(score, y).statistic}
    if likelihood == "bernoulli" and len(np.unique(y)) == 2:
        out["auc"] = roc_auc_score(y, score)
    return out


PRIMARY_METRIC = {
    "binomial": "spearman",
    "gaussian": "spearman",
    "bernoulli": "auc",
    "categorical": "balanced_accuracy",
}


def comparison_table(
    runs: Iterable[tuple[str, str, str, int, str | Path]], labels: Mapping[str, LabelSpec]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs``: (label, model, model type, fold, predictions TSV). Out-of-fold predictions of all folds
    are concatenated per label and model (stacked CV) and scored once. Returns the concatenated
    predictions and the comparison (one row per label and model)."""
    frames = []
    for label, model, kind, _fold, path in runs:
        frames.append(pd.read_csv(path, sep="\t").assign(label=label, model=model, type=kind))
    stacked = pd.concat(frames, ignore_index=True)
    rows = []
    for (label, model, kind), group in stacked.groupby(["label", "model", "type"], sort=False):
        likelihood = labels[label].likelihood
        metrics = label_metrics(group, likelihood)
        rows.append(
            {"label": label, "likelihood": likelihood, "model": model, "type": kind, "n_bags": len(group)}
            | {"metric": PRIMARY_METRIC[likelihood], "value": metrics.get(PRIMARY_METRIC[likelihood], np.nan)}
            | metrics
            | {"train_seconds": group.groupby("fold")["train_seconds"].first().sum()}
        )
    return stacked, pd.DataFrame(rows)


def instance_weight_table(
    weight_files: Iterable[tuple[str, str, str | Path]], table: pd.DataFrame, names: pd.Series, id_column: str
) -> pd.DataFrame:
    """One row per instance (``obs_name``, ``bag``) and one column per label and model (``label:model``;
    ``label:model:k`` for each of several outputs): the held-out fold's weights, so every instance has the
    weight of the one model that did not see its bag."""
    first_row = dict(zip(table[id_column], np.concatenate([[0], np.cumsum(table["n_instances"])[:-1]]), strict=True))
    out = pd.DataFrame(
        {"obs_name": names.to_numpy(), "bag": np.repeat(table[id_column].to_numpy(), table["n_instances"].to_numpy())}
    )
    columns: dict[str, np.ndarray] = {}
    for label, model, path in weight_files:
        with np.load(path) as f:
            if f["weights"].size == 0:
                continue
            bag_ids, offsets, weights = f["bags"], f["offsets"], f["weights"]
        keys = (
            [f"{label}:{model}"] if weights.shape[1] == 1 else [f"{label}:{model}:{k}" for k in range(weights.shape[1])]
        )
        for key in keys:
            columns.setdefault(key, np.full(len(out), np.nan, dtype=np.float32))
        for k, bag in enumerate(bag_ids):
            rows = slice(first_row[bag], first_row[bag] + offsets[k + 1] - offsets[k])
            for j, key in enumerate(keys):
                columns[key][rows] = weights[offsets[k] : offsets[k + 1], j]
    return pd.concat([out, pd.DataFrame(columns)], axis=1)


def comparison_figure(comparison: pd.DataFrame, dataset: str, path: str | Path) -> None:
    """One panel per label: the primary metric of every model."""
    import matplotlib.pyplot as plt

    from mixmil_workflow.studies.simulation_plots import save_figure

    labels = list(dict.fromkeys(comparison["label"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.2), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        rows = comparison[comparison["label"] == label]
        ax.bar(range(len(rows)), rows["value"], color=[f"C{k}" for k in range(len(rows))])
        ax.set_xticks(range(len(rows)), rows["model"], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{label} ({rows['likelihood'].iloc[0]})", fontsize=9)
        ax.set_ylabel(rows["metric"].iloc[0].replace("_", " "))
        ax.axhline(0.5 if rows["metric"].iloc[0] == "auc" else 0, color="0.6", lw=0.8, ls=":")
    fig.suptitle(f"{dataset}: out-of-fold performance", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
