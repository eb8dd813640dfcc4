"""Evaluation protocols of bring-your-own-bags studies: which bags each fit holds out.

``kfold`` (k-fold cross-validation, repeated ``n_repeats`` times, each repeat its own fold assignment),
``groups`` (k-fold over groups: the bags of one donor / plate / pool share a fold) and ``split`` (the
given train/test column). Folds are stratified by default, as the field expects: by the class for
Bernoulli and categorical labels, by quantile bins for counts and Gaussian labels (scikit-learn's
``StratifiedKFold`` / ``StratifiedGroupKFold``), so that no fold lacks a class.

The prepared bag table holds one fold column per repeat (``fold_r0``, ``fold_r1``, ...): fold ``k`` of
repeat ``r`` holds out the bags with ``fold_r<r> == k``; with a given split the test bags are fold 0
and the training bags fold -1 (never held out).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mixmil_workflow.own_bags.input import DatasetError

PROTOCOLS = ("kfold", "split", "groups")
QUANTILE_BINS = 5  # strata of a count or Gaussian label


def fold_column(repeat: int) -> str:
    return f"fold_r{repeat}"


def protocol_folds(protocol: Mapping) -> list[tuple[int, int]]:
    """(repeat, fold) of every fit a protocol makes: k folds per repeat, or the one test split."""
    if protocol["kind"] == "split":
        return [(0, 0)]
    return [(r, k) for r in range(protocol["n_repeats"]) for k in range(protocol["n_folds"])]


def strata(values: pd.Series, likelihood: str) -> np.ndarray:
    """Stratum of every bag: its class, or its quantile bin of a numeric label; missing labels are their
    own stratum (they are never scored, but spread evenly like the rest)."""
    missing = values.isna().to_numpy()
    if likelihood in ("bernoulli", "categorical"):
        out = values.astype(str).to_numpy(object)
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        ranks = numeric.rank(method="first").fillna(1).to_numpy()
        n_labelled = max(1, int((~missing).sum()))
        n_bins = max(1, min(QUANTILE_BINS, n_labelled // 2))
        out = np.floor((ranks - 1) / n_labelled * n_bins).astype(int).astype(object)
    out[missing] = "<missing>"
    return out.astype(str)


def assign_folds(
    table: pd.DataFrame,
    protocol: Mapping,
    seeds: list[int],
    stratify_by: np.ndarray | None = None,
    table_name: str = "the bag table",
) -> dict[str, np.ndarray]:
    """One fold array per repeat (``seeds`` has one seed per repeat), keyed by :func:`fold_column`."""
    kind = protocol["kind"]
    n_folds = protocol["n_folds"]
    if kind == "split":
        return {fold_column(0): _split_folds(table, protocol["split_column"], table_name)}
    if kind == "kfold" and protocol.get("fold_column"):
        return {fold_column(0): _given_folds(table, protocol["fold_column"], n_folds, table_name)}
    groups = None
    if kind == "groups":
        column = protocol.get("group_column")
        if not column or column not in table.columns:
            raise DatasetError(
                f"{table_name}: protocol 'groups' needs group_column, a column of the table (got {column!r}); "
                f"columns: {list(table.columns)}"
            )
        groups = table[column].astype(str).to_numpy()
    elif kind != "kfold":
        raise DatasetError(f"protocol kind must be one of {PROTOCOLS}, got {kind!r}")
    units = len(np.unique(groups)) if groups is not None else len(table)
    if units < n_folds:
        what = "groups" if groups is not None else "bags"
        raise DatasetError(
            f"{table_name}: {n_folds}-fold cross-validation needs at least {n_folds} {what}; found {units}; "
            "lower protocol.n_folds"
        )
    return {fold_column(r): kfold(len(table), n_folds, seed, groups, stratify_by) for r, seed in enumerate(seeds)}


def kfold(
    n_bags: int, n_folds: int, seed: int, groups: np.ndarray | None = None, stratify_by: np.ndarray | None = None
) -> np.ndarray:
    """Fold of every bag: k-fold (stratified when ``stratify_by`` is given), bags of one group together."""
    import warnings

    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    index = np.zeros((n_bags, 1))
    if groups is None and stratify_by is None:
        splitter = KFold(n_folds, shuffle=True, random_state=seed).split(index)
    elif groups is None:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(index, stratify_by)
    elif stratify_by is None:
        # GroupKFold balances fold sizes deterministically; shuffle the group labels for a seeded assignment.
        shuffled = _shuffled_group_codes(groups, seed)
        splitter = GroupKFold(n_folds).split(index, groups=shuffled)
    else:
        splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(index, stratify_by, groups)
    folds = np.empty(n_bags, dtype=int)
    with warnings.catch_warnings():  # a stratum smaller than k cannot be in every fold; it is spread as far as it goes
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(splitter):
            folds[test] = k
    return folds


def _shuffled_group_codes(groups: np.ndarray, seed: int) -> np.ndarray:
    names, codes = np.unique(groups, return_inverse=True)
    return np.random.default_rng(seed).permutation(len(names))[codes]


def _split_folds(table: pd.DataFrame, column: str, table_name: str) -> np.ndarray:
    if column not in table.columns:
        raise DatasetError(f"{table_name}: protocol 'split' needs the column {column!r} (values train/test)")
    values = table[column].astype(str)
    bad = sorted(set(values) - {"train", "test"})
    if bad:
        raise DatasetError(f"{table_name}, split column {column!r}: values {bad[:5]} are not 'train' or 'test'")
    if not (values == "train").any() or not (values == "test").any():
        raise DatasetError(f"{table_name}, split column {column!r}: needs both train and test bags")
    return np.where(values == "test", 0, -1)


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


def check_classes_in_training(
    folds: Mapping[str, np.ndarray], classes: np.ndarray, codes: np.ndarray, label: str, table_name: str
) -> None:
    """Every class of a categorical label must have training bags in every fit (a class seen only in a
    held-out fold cannot be predicted): checked when the folds are made, before any training."""
    for column, fold in folds.items():
        for k in sorted(set(fold.tolist()) - {-1}):
            present = set(codes[(fold != k) & (codes >= 0)].tolist())
            absent = [str(classes[c]) for c in range(len(classes)) if c not in present]
            if absent:
                raise DatasetError(
                    f"{table_name}, label column {label!r}: class(es) {absent} have no training bags when fold {k} "
                    f"({column}) is held out; every class needs bags in at least two folds (add bags of that class, "
                    "merge rare classes, or lower protocol.n_folds)"
                )


def dataset_folds(
    dataset, protocol: Mapping, seeds: list[int], table_name: str
) -> tuple[dict[str, np.ndarray], str | None]:
    """The fold columns of a loaded :class:`~mixmil_workflow.own_bags.input.BagDataset` (stratified by its
    first label unless ``protocol.stratify`` is false), checked so that every class of a categorical label has
    training bags in every fit. Returns the folds and the label they are stratified by (or None)."""
    first = next(iter(dataset.label_specs.values()))
    by = strata(dataset.table[first.column], first.likelihood) if protocol["stratify"] else None
    folds = assign_folds(dataset.table, protocol, seeds, by, table_name)
    for column, classes in dataset.classes.items():
        check_classes_in_training(folds, classes, dataset.labels[column], column, table_name)
    return folds, (first.column if by is not None else None)
