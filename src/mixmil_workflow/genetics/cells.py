"""Cells of the genetics branch (Appendix D.1, Table D.1): the lymphoid cells of OneK1K with raw counts,
highly variable genes (scanpy, ``seurat_v3`` on counts, pools as batches) and scVI embeddings
(scvi-tools: 2 layers, 30 latent dimensions, ZINB, pool as batch, batch size 256, 15 epochs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.genetics.demo import LYMPHOID_CELL_TYPES

REQUIRED_OBS = ("donor_id", "pool_number", "cell_type", "sex", "age")


class CellDataError(ValueError):
    """Bad expression input; the message names the file, the field and the fix."""


def raw_counts_layout(adata, source: str) -> str:
    """Where the raw counts are: ``raw.X`` (older CELLxGENE versions, normalised values in ``X``) or ``X``
    (schema 7). Checked on a sample of values: raw counts are non-negative integers."""
    candidates = (["raw.X"] if adata.raw is not None else []) + ["X"]
    for where in candidates:
        matrix = adata.raw.X if where == "raw.X" else adata.X
        values = matrix[: min(500, matrix.shape[0])]
        values = values.data if hasattr(values, "data") else np.asarray(values).ravel()
        if values.size and np.all(values >= 0) and np.all(values == np.round(values)):
            return where
    raise CellDataError(
        f"{source}: neither X nor raw.X holds integer counts; the branch needs raw UMI counts "
        "(download the CELLxGENE h5ad, which carries them)"
    )


def select_lymphoid(adata, source: str, cell_types: Mapping[str, str] = LYMPHOID_CELL_TYPES):
    """The CD4, CD8 and NK cells with raw counts in ``X`` and a ``cell_group`` column; sex and age as
    donor covariates (sex 1 = male)."""
    import anndata

    missing = [c for c in REQUIRED_OBS if c not in adata.obs]
    if missing:
        raise CellDataError(f"{source}: obs lacks {missing}; a OneK1K CELLxGENE h5ad has {', '.join(REQUIRED_OBS)}")
    layout = raw_counts_layout(adata, source)
    labels = adata.obs["cell_type"].astype(str)
    keep = labels.isin(list(cell_types)).to_numpy()
    if not keep.any():
        found = ", ".join(sorted(labels.unique())[:5])
        raise CellDataError(f"{source}: no cell has a lymphoid cell_type label (found e.g. {found})")
    counts = adata.raw.X if layout == "raw.X" else adata.X
    var = adata.raw.var if layout == "raw.X" else adata.var
    obs = adata.obs.loc[keep, list(REQUIRED_OBS)].copy()
    obs["cell_group"] = labels[keep].map(cell_types).astype("category")
    obs["donor_id"] = obs["donor_id"].astype(str)
    obs["pool_number"] = obs["pool_number"].astype(str).astype("category")
    selected = anndata.AnnData(X=counts[keep], obs=obs, var=var.copy())
    selected.uns["counts_layout"] = layout
    return selected


def highly_variable_genes(adata, n_top_genes: int, batch_key: str = "pool_number"):
    """Subset to the ``n_top_genes`` most variable genes (seurat_v3 on counts, per batch)."""
    import scanpy as sc

    n_top = min(n_top_genes, adata.n_vars)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top, flavor="seurat_v3", batch_key=batch_key, subset=True)
    return adata


@dataclass(frozen=True)
class ScviSettings:
    """Table D.1 of the paper."""

    n_layers: int = 2
    n_latent: int = 30
    gene_likelihood: str = "zinb"
    batch_size: int = 256
    max_epochs: int = 15
    batch_key: str = "pool_number"


def scvi_embedding(
    adata, settings: ScviSettings, seed: int, accelerator: str = "auto", model_dir: str | Path | None = None
) -> np.ndarray:
    """Train scVI on the counts and return the latent means (cells, n_latent). ``accelerator``: "auto"
    (a GPU when there is one), "cpu" or "gpu". ``model_dir``: save the trained model there (scvi-tools'
    own format, without the data: ``scvi.model.SCVI.load(model_dir, adata=...)`` with the same cells and
    genes), written to a temporary folder first so that a failed run leaves none."""
    import scvi

    scvi.settings.seed = seed
    adata = adata.copy()
    scvi.model.SCVI.setup_anndata(adata, batch_key=settings.batch_key)
    model = scvi.model.SCVI(
        adata, n_layers=settings.n_layers, n_latent=settings.n_latent, gene_likelihood=settings.gene_likelihood
    )
    model.train(
        max_epochs=settings.max_epochs,
        batch_size=settings.batch_size,
        accelerator=accelerator,
        enable_progress_bar=True,
    )
    latent = model.get_latent_representation()
    history = model.history.get("elbo_train")
    if history is not None and not np.isfinite(np.asarray(history, dtype=float)).all():
        raise RuntimeError("scVI training diverged (non-finite ELBO)")
    if model_dir is not None:
        import shutil
        import tempfile

        model_dir = Path(model_dir)
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
        try:
            model.save(str(staging / "model"), overwrite=True, save_anndata=False)
            shutil.rmtree(model_dir, ignore_errors=True)
            (staging / "model").rename(model_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return np.asarray(latent, dtype=np.float32)


def donor_covariates(obs: pd.DataFrame) -> pd.DataFrame:
    """One row per donor: sex (1 = male) and age, checked to be constant within a donor."""
    per_donor = obs.groupby("donor_id", observed=True).agg(sex=("sex", "nunique"), age=("age", "nunique"))
    varying = per_donor.index[(per_donor > 1).any(axis=1)]
    if len(varying):
        raise CellDataError(f"sex or age differs between cells of donor(s) {list(varying[:3])}")
    first = obs.groupby("donor_id", observed=True)[["sex", "age"]].first()
    return pd.DataFrame({"sex": (first["sex"].astype(str) == "male").astype(int), "age": first["age"].astype(float)})
