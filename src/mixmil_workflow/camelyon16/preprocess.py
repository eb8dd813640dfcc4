"""Splits, standardisation with training statistics, optional PCA, and loading slides as bags.

The converted h5ad is read slide range by slide range (h5py), so fitting the preprocessing streams over
the file, and loading a split materialises its instance matrix exactly once, already transformed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path

if TYPE_CHECKING:
    from mixmil_workflow.bags import Bags

SPLITS = ("train", "validation", "test")


def assign_splits(slides: pd.DataFrame, validation_fraction: float, seed: int) -> pd.DataFrame:
    """Add ``split``: the official test slides stay ``test``; ``validation_fraction`` of the official
    training slides, stratified by label, become ``validation`` (hyperparameter selection, App. C.3)."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    split = slides["official_split"].to_numpy(dtype=object).copy()
    for label in (0, 1):
        candidates = np.flatnonzero((slides["official_split"] == "train").to_numpy() & (slides["label"] == label))
        n_val = int(round(validation_fraction * len(candidates)))
        if validation_fraction > 0 and len(candidates) >= 2:
            n_val = max(n_val, 1)
        split[rng.choice(candidates, n_val, replace=False)] = "validation"
    out = slides.assign(split=split)
    for name in ("train", "test"):
        labels = set(out.loc[out["split"] == name, "label"])
        if labels != {0, 1}:
            raise ValueError(f"the {name} slides need both labels (normal and tumour), found {sorted(labels)}")
    return out


def _slide_blocks(x, slides: pd.DataFrame, max_rows: int) -> Iterator[np.ndarray]:
    """Row blocks of the given slides (at most ``max_rows`` rows unless one slide is larger)."""
    for row in slides.itertuples(index=False):
        for start in range(row.first_row, row.first_row + row.n_instances, max_rows):
            yield x[start : min(start + max_rows, row.first_row + row.n_instances)]


@dataclass
class Preprocessing:
    """x -> ((x - mean) / scale) @ components.T (no projection when ``components`` is empty)."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # (k, Q) or (0, Q)
    explained_variance_ratio: np.ndarray

    @property
    def n_output_features(self) -> int:
        return self.components.shape[0] or self.mean.shape[0]

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean.astype(np.float32)) / self.scale.astype(np.float32)
        return z @ self.components.T.astype(np.float32) if self.components.shape[0] else z

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **vars(self))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessing:
        with np.load(path) as f:
            return cls(**{k: f[k] for k in ("mean", "scale", "components", "explained_variance_ratio")})


def fit_preprocessing(
    h5ad_path: str | Path, slides: pd.DataFrame, pca_components: int | None, max_rows: int = 65536
) -> Preprocessing:
    """Mean and sd of every feature over the training instances (sklearn's StandardScaler, as the
    reference), then PCA on the standardised training instances when ``pca_components`` is set.

    Both come from one streaming pass accumulating sums and the cross-product matrix in float64: the PCA
    is the exact eigendecomposition of the training covariance (what sklearn's full-SVD PCA computes),
    without holding the training matrix; components are sign-fixed so their largest loading is positive.
    """
    import h5py

    train = slides[slides["split"] == "train"]
    with h5py.File(h5ad_path, "r") as f:
        x = f["X"]
        q = x.shape[1]
        n, total, cross = 0, np.zeros(q), np.zeros((q, q))
        for block in _slide_blocks(x, train, max_rows):
            b = block.astype(np.float64)
            n += b.shape[0]
            total += b.sum(0)
            cross += b.T @ b
    mean = total / n
    cov = cross / n - np.outer(mean, mean)  # population covariance, as StandardScaler's variance
    var = np.clip(np.diag(cov), 0, None)
    scale = np.where(var > 0, np.sqrt(var), 1.0)  # StandardScaler leaves constant features unscaled
    if not pca_components:
        return Preprocessing(mean, scale, np.zeros((0, q)), np.zeros(0))
    if pca_components > q:
        raise ValueError(f"pca_components {pca_components} exceeds the {q} features")
    corr = cov / np.outer(scale, scale)
    values, vectors = np.linalg.eigh(corr)
    order = np.argsort(values)[::-1][:pca_components]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(len(order)), np.abs(components).argmax(1)])
    components *= signs[:, None]
    ratio = values[order] / values.sum()
    return Preprocessing(mean, scale, components, ratio)


@dataclass
class SplitBags:
    bags: Bags
    slides: np.ndarray
    labels: np.ndarray
    first_row: np.ndarray  # the slides' rows in the h5ad (instance scores map back to patches)


def load_split(
    h5ad_path: str | Path, slides: pd.DataFrame, split: str, preprocessing: Preprocessing, max_rows: int = 65536
) -> SplitBags:
    """The slides of one split as bags of preprocessed instances (float32), in slide-table order.

    The split's matrix is allocated once and filled block by block, so memory is that matrix plus one
    block; the bags are a view of it."""
    import h5py
    import torch  # here, not at the top: splitting and PCA run in the torch-free data environment

    from mixmil_workflow.bags import Bags

    part = slides[slides["split"] == split]
    if part.empty:
        raise ValueError(f"no slides in split {split!r}")
    sizes = part["n_instances"].to_numpy()
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out = np.empty((int(offsets[-1]), preprocessing.n_output_features), dtype=np.float32)
    with h5py.File(h5ad_path, "r") as f:
        row = 0
        for block in _slide_blocks(f["X"], part, max_rows):
            out[row : row + block.shape[0]] = preprocessing.transform(block)
            row += block.shape[0]
    if not np.isfinite(out).all():
        raise ValueError(f"{h5ad_path}: non-finite values after preprocessing in split {split!r}")
    bags = Bags(torch.from_numpy(out), torch.as_tensor(offsets, dtype=torch.long))
    return SplitBags(bags, part["slide"].to_numpy(), part["label"].to_numpy(), part["first_row"].to_numpy())
