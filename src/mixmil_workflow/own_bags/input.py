"""Bring your own bags: instances in an AnnData ``.h5ad`` plus a bag table -> bags, labels, covariates.

Every check runs before any model does and fails with one :class:`DatasetError` that names the file,
the field and the fix. The instance matrix is copied at most once (the gather into bag order); when the
instances are already grouped by bag in table order, not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mixmil_workflow.bags import Bags

TABLE_READERS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".parquet": "parquet"}


class DatasetError(ValueError):
    """Invalid bring-your-own-bags input; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class LabelSpec:
    """One label column and its likelihood: ``binomial`` (``n_trials``), ``bernoulli``, ``categorical``
    (any values; classes are the sorted unique values) or ``gaussian``."""

    column: str
    likelihood: str
    n_trials: int | None = None

    @classmethod
    def parse(cls, column: str, spec: str | Mapping) -> LabelSpec:
        from mixmil_workflow.models.registry import LIKELIHOODS  # torch-free: read when the workflow is parsed

        out = cls(column, spec) if isinstance(spec, str) else cls(column, spec["likelihood"], spec.get("n_trials"))
        if out.likelihood not in LIKELIHOODS:
            raise DatasetError(f"label {column!r}: likelihood {out.likelihood!r} is not one of {LIKELIHOODS}")
        if out.likelihood == "binomial" and not out.n_trials:
            raise DatasetError(f"label {column!r}: a binomial likelihood needs n_trials (e.g. 2 for genotype dosages)")
        return out


@dataclass
class BagDataset:
    bags: Bags
    bag_ids: np.ndarray
    table: pd.DataFrame  # the bag table in bag order
    labels: dict[str, np.ndarray]  # column -> model-ready labels (categorical: class indices)
    label_specs: dict[str, LabelSpec]
    covariates: np.ndarray | None
    covariate_names: list[str] = field(default_factory=list)
    classes: dict[str, np.ndarray] = field(default_factory=dict)  # categorical column -> class names
    instance_names: np.ndarray | None = None  # obs names of the instances in bag order

    @property
    def n_bags(self) -> int:
        return self.bags.n_bags


def read_bag_table(path: str | Path, id_column: str | None = None) -> pd.DataFrame:
    """A ``.tsv``/``.csv``/``.parquet`` bag table; ``id_column`` is read as text ("000" stays "000")."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"bag table {path} does not exist; check the path in the config (table:)")
    kind = TABLE_READERS.get(path.suffix.lower())
    if kind is None:
        raise DatasetError(f"bag table {path}: unknown format {path.suffix!r}; use .tsv, .csv or .parquet")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        text = {id_column: str} if id_column else None
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=text, keep_default_na=False, na_values=[""])
    except Exception as err:  # pandas raises many types for unreadable files
        raise DatasetError(f"bag table {path} cannot be read as {kind} ({type(err).__name__}: {err})") from err


def _read_instances(path: Path, bag_column: str, embedding: str) -> tuple[np.ndarray, np.ndarray]:
    import anndata

    if not path.exists():
        raise DatasetError(f"instance file {path} does not exist; check the path in the config (instances:)")
    try:
        adata = anndata.read_h5ad(path)
    except Exception as err:
        raise DatasetError(
            f"instance file {path} is not a readable AnnData .h5ad ({type(err).__name__}: {err}); "
            "write it with anndata's write_h5ad"
        ) from err
    if bag_column not in adata.obs.columns:
        raise DatasetError(
            f"instance file {path}: obs has no column {bag_column!r} (the bag id of every instance); "
            f"obs columns: {list(adata.obs.columns)}; set bag_column"
        )
    if embedding == "X":
        x = adata.X
    elif embedding in adata.obsm:
        x = adata.obsm[embedding]
    else:
        raise DatasetError(
            f"instance file {path}: no obsm key {embedding!r}; available: {['X', *adata.obsm.keys()]}; set embedding"
        )
    if hasattr(x, "toarray"):  # sparse X: embeddings are dense by nature
        x = x.toarray()
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(
            f"instance file {path}: embedding {embedding!r} is not a numeric matrix ({x.dtype}, {x.shape})"
        )
    if x.shape[1] == 0 or x.shape[0] == 0:
        raise DatasetError(
            f"instance file {path}: embedding {embedding!r} has shape {x.shape}; it needs instances and at least "
            f"one feature; set embedding to a filled matrix (available: {['X', *adata.obsm.keys()]})"
        )
    ids = adata.obs[bag_column].astype(str).to_numpy()
    return x, ids, adata.obs_names.to_numpy()


def _gather_checked(x: np.ndarray, order: np.ndarray | None, where: str, names: np.ndarray, chunk: int = 65536):
    """The rows of ``x`` in ``order`` as float32, checked for NaN/Inf block by block: one copy at most
    (none when ``x`` is float32 and already in order), never a full-size temporary."""
    if order is None and x.dtype == np.float32:
        out = x
    else:
        out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], chunk):
        rows = slice(start, min(start + chunk, x.shape[0]))
        block = x[rows] if order is None else x[order[rows]]
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            source = start + row if order is None else order[start + row]
            raise DatasetError(
                f"{where} has NaN/Inf (first at instance {names[source]!r}, feature {col}); "
                "drop or impute those instances"
            )
        if out is not x:
            out[rows] = block
    return out


def load_bag_dataset(
    instances: str | Path,
    table: str | Path | pd.DataFrame,
    labels: Mapping[str, str | Mapping],
    *,
    bag_column: str = "bag",
    id_column: str = "bag",
    embedding: str = "X",
    covariates: Sequence[str] = (),
    missing_allowed: Sequence[str] = (),
) -> BagDataset:
    """Load and check a bring-your-own-bags dataset.

    ``instances``: ``.h5ad`` with the embeddings in ``X`` or ``obsm[embedding]`` and the bag id in
    ``obs[bag_column]``. ``table``: one row per bag with ``id_column``, the label columns and the
    covariate columns. ``labels``: column -> likelihood name or ``{likelihood, n_trials}``.
    ``missing_allowed``: label columns whose empty cells are kept as missing labels (for models that
    leave them out of their fit); elsewhere an empty label is an error.
    """
    instances = Path(instances)
    table_name = "the bag table" if isinstance(table, pd.DataFrame) else f"bag table {table}"
    frame = table.copy() if isinstance(table, pd.DataFrame) else read_bag_table(table, id_column)
    specs = {col: LabelSpec.parse(col, spec) for col, spec in labels.items()}
    if not specs:
        raise DatasetError("no label columns given; name at least one column of the bag table under labels")
    needed = [id_column, *specs, *covariates]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DatasetError(f"{table_name}: missing columns {missing}; it has {list(frame.columns)}")
    frame[id_column] = frame[id_column].astype(str)
    duplicated = frame.loc[frame[id_column].duplicated(), id_column].tolist()
    if duplicated:
        raise DatasetError(f"{table_name}: bag ids listed more than once in {id_column!r}: {duplicated[:5]}")

    x, ids, names = _read_instances(instances, bag_column, embedding)
    table_ids = frame[id_column].to_numpy()
    known = set(table_ids.tolist())
    orphans = sorted(set(ids.tolist()) - known)
    if orphans:
        raise DatasetError(
            f"instance file {instances}: {len(orphans)} bag id(s) in obs[{bag_column!r}] are not in {table_name} "
            f"(e.g. {orphans[:3]}); add those bags to the table or drop their instances"
        )
    counts = pd.Series(ids).value_counts()
    empty = [b for b in table_ids if counts.get(b, 0) == 0]
    if empty:
        raise DatasetError(
            f"{table_name}: {len(empty)} bag(s) have no instances in {instances} (e.g. {empty[:3]}); "
            "remove them from the table or check bag_column / id_column"
        )

    import torch

    from mixmil_workflow.bags import Bags

    codes = pd.Categorical(ids, categories=table_ids).codes
    sizes = np.bincount(codes, minlength=len(table_ids))
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.long)
    order = None if np.all(codes[1:] >= codes[:-1]) else np.argsort(codes, kind="stable")
    x = _gather_checked(x, order, f"instance file {instances}: embedding {embedding!r}", names)
    bags = Bags(torch.from_numpy(x), offsets)

    prepared, classes = {}, {}
    for col, spec in specs.items():
        prepared[col], cls = prepare_label_column(frame[col], spec, table_name, allow_missing=col in missing_allowed)
        if cls is not None:
            classes[col] = cls
    cov = None
    if covariates:
        cov = _prepare_covariates(frame, list(covariates), table_name)
    names = names if order is None else names[order]
    return BagDataset(
        bags, table_ids, frame.reset_index(drop=True), prepared, specs, cov, list(covariates), classes, names
    )


def prepare_label_column(
    values: pd.Series, spec: LabelSpec, table_name: str, allow_missing: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Model-ready labels of one column: numbers (NaN where missing), or for a categorical label class
    indices into the sorted class names taken from the whole column (-1 where missing)."""
    where = f"{table_name}, label column {spec.column!r}"
    missing = values.isna().to_numpy()
    if missing.all():
        raise DatasetError(f"{where}: no bag has a label")
    if missing.any() and not allow_missing:
        raise DatasetError(
            f"{where}: {int(missing.sum())} bag(s) have no label (e.g. row {int(np.flatnonzero(missing)[0]) + 2}); "
            "drop or impute them, or keep them as missing labels with models that leave them out of their fit "
            "(MixMIL and the GLMM with missing_labels: true)"
        )
    if spec.likelihood == "categorical":
        text = values.astype(str)
        classes = np.unique(text[~missing])
        if len(classes) < 2:
            raise DatasetError(f"{where}: a categorical label needs at least two classes, found {list(classes)}")
        codes = np.where(missing, -1, np.searchsorted(classes, text.to_numpy()))
        return codes, classes
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy() & ~missing
    if bad.any():
        raise DatasetError(
            f"{where}: value {values[bad].iloc[0]!r} is not a number; use likelihood 'categorical' for class names"
        )
    if not np.isfinite(numeric.to_numpy(float)[~missing]).all():
        raise DatasetError(f"{where}: infinite values; labels must be finite numbers")
    try:
        from mixmil_workflow.models.likelihoods import LabelError, make_likelihood

        likelihood = make_likelihood(spec.likelihood, n_trials=spec.n_trials)
        likelihood.prepare_labels(numeric.to_numpy(float)[~missing])
    except LabelError as err:
        raise DatasetError(f"{where}: {err}") from None
    except (ValueError, TypeError) as err:
        raise DatasetError(f"{where}: {err}") from None
    if spec.likelihood == "bernoulli" and numeric[~missing].nunique() < 2:
        raise DatasetError(f"{where}: every labelled bag has the same value; a Bernoulli label needs both 0 and 1")
    return numeric.to_numpy(float), None


def _prepare_covariates(frame: pd.DataFrame, columns: list[str], table_name: str) -> np.ndarray:
    out = []
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(float)).all():
            raise DatasetError(
                f"{table_name}, covariate column {col!r}: {int((~np.isfinite(values.to_numpy(float))).sum())} missing, "
                "infinite or non-numeric value(s) "
                "(one-hot encode categories, impute or drop those bags)"
            )
        if values.nunique() < 2:
            raise DatasetError(
                f"{table_name}, covariate column {col!r} is constant; the intercept already models a constant, "
                "remove it from covariates"
            )
        out.append(values.to_numpy(float))
    return np.column_stack(out)


def stacked_folds(n_bags: int, n_folds: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index of every bag for k-fold stacked cross-validation (bags of one group share a fold); the
    genetics branch's unstratified assignment (own bags: :func:`mixmil_workflow.own_bags.protocol.kfold`)."""
    if n_folds < 2:
        raise DatasetError(f"n_folds must be at least 2, got {n_folds}")
    units = np.unique(groups) if groups is not None else np.arange(n_bags)
    if len(units) < n_folds:
        what = "groups" if groups is not None else "bags"
        raise DatasetError(f"{n_folds}-fold cross-validation needs at least {n_folds} {what}; found {len(units)}")
    rng = np.random.default_rng(seed)
    unit_fold = np.empty(len(units), dtype=int)
    unit_fold[rng.permutation(len(units))] = np.arange(len(units)) % n_folds
    if groups is None:
        return unit_fold
    return unit_fold[np.searchsorted(units, groups)]
