"""GLMM screen: which universe variants the donors' mean cell embeddings predict (Appendix D.1)."""

import anndata
import pandas as pd

from mixmil_workflow.genetics.labels import donor_mean_embeddings, donor_table, glmm_screen, read_dosages
from mixmil_workflow.io import atomic_path, log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    cells = anndata.read_h5ad(snakemake.input.cells)
    pcs = read_table(snakemake.input.pcs).set_index("sample")
    donors = donor_table(cells.obs, pcs)
    means = donor_mean_embeddings(cells.obsm["X_scvi"], cells.obs["donor_id"].astype(str), donors.index)
    universe = read_table(snakemake.input.universe)
    dosages = read_dosages(snakemake.input.vcf, universe["rsid"], list(donors["sample"]))
    covariates = donors.drop(columns="sample").to_numpy(float)
    print(f"{len(donors)} donors, {means.shape[1]} embedding dimensions, {dosages.shape[1]} variants")
    print(f"covariates: {', '.join(donors.columns[1:])}")
    screen = glmm_screen(means, dosages, covariates, snakemake.params.n_folds, snakemake.params.seed)
    screen = screen.merge(universe[["rsid", "cell_types", "genes"]], on="rsid")
    print(screen.sort_values("spearman", ascending=False).head(20).to_string(index=False))
    save_table(snakemake.output.screen, screen.round(6), provenance=snakemake.params.provenance)
    save_table(snakemake.output.donors, donors.reset_index())
    with atomic_path(snakemake.output.dosages) as tmp:
        dosages.to_csv(tmp, sep="\t", compression="gzip")
    if pd.isna(screen["spearman"]).any():
        raise RuntimeError("the GLMM screen produced NaN correlations")
