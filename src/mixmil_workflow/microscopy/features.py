"""From per-plate embeddings to bags: PCA fitted on one repeat's training wells only, the wells as bags
(instances in bag order), the held-out split as ``fold`` (test 0, train -1) and the plate as one-hot
covariates (the paper's plate fixed effects for MixMIL; regressed out of the instances for the baselines).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.microscopy.bbbc021 import MicroscopyError
from mixmil_workflow.microscopy.crops import read_crop_table


def gather_cells(
    embedding_paths: Sequence[str | Path], crop_tables: Sequence[str | Path]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Every plate's embeddings and crop tables, concatenated in plate order (cells grouped by well)."""
    blocks, tables = [], []
    for emb_path, table_path in zip(embedding_paths, crop_tables, strict=True):
        x = np.load(emb_path)
        table = read_crop_table(table_path)
        if len(x) != len(table):
            raise MicroscopyError(
                f"{emb_path} has {len(x)} rows but {table_path} lists {len(table)} crops; rerun embed"
            )
        blocks.append(x)
        tables.append(table)
    cells = pd.concat(tables, ignore_index=True)
    if cells.empty:
        raise MicroscopyError("no cell crops on any plate: check the nucleus locations and the image table")
    return np.concatenate(blocks), cells


def plate_covariates(plates: pd.Series) -> pd.DataFrame:
    """One-hot plate indicators without the first plate (the intercept carries it)."""
    dummies = pd.get_dummies(plates.astype(str), prefix="plate", dtype=float)
    return dummies.iloc[:, 1:]


def validation_wells(bags: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the training wells held back for hyperparameter selection: ``fraction`` of each
    MoA's training wells (at least one where a MoA has two or more), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(bags), dtype=bool)
    for _, rows in bags[bags["split"] == "train"].groupby("moa", sort=True):
        n = int(round(fraction * len(rows))) or (1 if len(rows) > 1 else 0)
        mask[rng.choice(rows.index.to_numpy(), size=n, replace=False)] = True
    return mask


def repeat_features(
    x: np.ndarray,
    cells: pd.DataFrame,
    wells: pd.DataFrame,
    repeat: int,
    n_components: int,
    seed: int,
    validation_fraction: float = 0.1,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(instances x n_components PCs in bag order, bag table, PCA summary) of one repeat. The PCA is fitted
    on the training wells' cells and the PCs divided by one scalar so that they average unit variance there.
    The bag table's ``validation`` column marks the training wells the sweep scores on (Appendix C.2);
    the final models train on all training wells."""
    from sklearn.decomposition import PCA

    split = wells.set_index("bag")[f"split_r{repeat}"]
    cell_split = cells["bag"].map(split)
    if cell_split.isna().any():
        raise MicroscopyError(f"crop of bag {cells.loc[cell_split.isna(), 'bag'].iloc[0]} is not in the well table")
    train = (cell_split == "train").to_numpy()
    if n_components > min(train.sum(), x.shape[1]):
        raise MicroscopyError(
            f"microscopy.pca_components: {n_components} components need at least as many training cells and "
            f"features ({train.sum()} cells, {x.shape[1]} features in repeat {repeat})"
        )
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh", random_state=seed).fit(x[train])
    z = pca.transform(x).astype(np.float32)
    scale = float(np.sqrt(z[train].var(axis=0).mean()))
    z /= scale
    counts = cells.groupby("bag", sort=False).size()
    bags = wells.set_index("bag").loc[counts.index].reset_index()
    bags["split"] = bags[f"split_r{repeat}"]
    bags = bags.drop(columns=[c for c in bags.columns if c.startswith("split_r")])
    bags["fold"] = np.where(bags["split"] == "test", 0, -1)
    bags["n_instances"] = counts.to_numpy()
    bags["validation"] = validation_wells(bags, validation_fraction, seed)
    bags = pd.concat([bags, plate_covariates(bags["plate"]).reset_index(drop=True)], axis=1)
    # cells are grouped by bag (plates in order, wells sorted, sites sorted); check before relying on it
    starts = np.r_[0, np.cumsum(counts.to_numpy())[:-1]]
    if not (cells["bag"].to_numpy()[starts] == counts.index.to_numpy()).all() or cells["bag"].nunique() != len(counts):
        raise MicroscopyError("crops are not grouped by well; the crop tables must list each well's cells together")
    summary = {
        "repeat": repeat,
        "n_components": n_components,
        "training_cells": int(train.sum()),
        "explained_variance": [float(v) for v in pca.explained_variance_ratio_],
        "scale": scale,
    }
    return z, bags, summary


def load_repeat(matrix_path: str | Path, bags_path: str | Path, n_components: int):
    """A repeat's bags on its leading ``n_components`` PCs and its bag table (``bag`` as text)."""
    import torch

    from mixmil_workflow.bags import Bags
    from mixmil_workflow.io import read_table

    matrix = np.load(matrix_path, mmap_mode="r")
    if n_components > matrix.shape[1]:
        raise MicroscopyError(f"{matrix_path} has {matrix.shape[1]} components; {n_components} asked for")
    table = read_table(bags_path).astype({"bag": str})
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(table["n_instances"].to_numpy())]), dtype=torch.long)
    x = torch.from_numpy(np.ascontiguousarray(matrix[:, :n_components], dtype=np.float32))
    return Bags(x, offsets), table


def plate_columns(table: pd.DataFrame) -> list[str]:
    """The plate covariates of a bag table (one-hot, first plate dropped)."""
    return [c for c in table.columns if c.startswith("plate_")]
