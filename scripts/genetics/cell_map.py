"""A 2-D map of the cells for Fig. E.3: UMAP (scanpy) of the scVI embeddings of a seeded sample of
cells; one row per cell (all cells, so their cell types enter the odds ratios), NaN off the sample. The
same as an AnnData a single-cell user opens directly: the cells' obs with obsm["X_scvi"] and
obsm["X_umap"] (no counts: those stay in lymphoid_scvi.h5ad), e.g. for scanpy.pl.umap."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import anndata
import numpy as np
import pandas as pd
import scanpy as sc

from mixmil_workflow.io import atomic_path, log_to, save_tsv_gz

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    # backed: only obs and obsm are read into memory, the count matrix stays on disk
    cells = anndata.read_h5ad(snakemake.input[0], backed="r")
    embedding = np.asarray(cells.obsm["X_scvi"], dtype=np.float32)
    rng = np.random.default_rng(params.seed)
    n = min(params.n_cells, cells.n_obs)
    sample = np.sort(rng.choice(cells.n_obs, size=n, replace=False))
    print(f"UMAP of {n} of {cells.n_obs} cells ({embedding.shape[1]} scVI dimensions, {params.n_neighbors} neighbours)")
    sc.settings.n_jobs = snakemake.threads
    mapped = anndata.AnnData(X=embedding[sample])
    sc.pp.neighbors(mapped, n_neighbors=params.n_neighbors, use_rep="X", random_state=params.seed)
    sc.tl.umap(mapped, random_state=params.seed)
    coords = np.full((cells.n_obs, 2), np.nan, dtype=np.float32)
    coords[sample] = mapped.obsm["X_umap"]
    table = pd.DataFrame(
        {
            "obs_name": cells.obs_names,
            "donor_id": cells.obs["donor_id"].astype(str).to_numpy(),
            "cell_type": cells.obs["cell_type"].astype(str).to_numpy(),
            "cell_group": cells.obs["cell_group"].astype(str).to_numpy(),
            "umap1": coords[:, 0],
            "umap2": coords[:, 1],
        }
    )
    save_tsv_gz(snakemake.output.table, table, float_format="%.4f")
    embeddings = anndata.AnnData(
        obs=cells.obs.copy(), obsm={"X_scvi": embedding, "X_umap": coords}, uns={"umap": {"n_cells": n}}
    )
    with atomic_path(snakemake.output.h5ad) as tmp:
        embeddings.write_h5ad(tmp)
