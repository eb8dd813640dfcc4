"""The donors (VCF sample, sex, age, genetic PCs), their mean cell embeddings and the allele counts of
every universe variant: the inputs of the GLMM screen and of the labels."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import anndata
import numpy as np

from mixmil_workflow.genetics.labels import (
    donor_mean_embeddings,
    donor_table,
    indexed_reading,
    read_dosages,
    vcf_index,
)
from mixmil_workflow.io import atomic_path, log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    cells = anndata.read_h5ad(snakemake.input.cells, backed="r")
    pcs = read_table(snakemake.input.pcs).set_index("sample")
    donors = donor_table(cells.obs, pcs)
    means = donor_mean_embeddings(cells.obsm["X_scvi"], cells.obs["donor_id"].astype(str), donors.index)
    universe = read_table(snakemake.input.universe)
    how = (
        f"through the index {vcf_index(snakemake.input.vcf)} (tabix)"
        if indexed_reading(snakemake.input.vcf)
        else ("scanning the whole VCF (no .csi/.tbi index next to it, or no tabix)")
    )
    print(f"reading the allele counts of {len(universe)} variants for {len(donors)} donors {how} ...", flush=True)
    # With the downloaded .csi index next to the VCF, only the universe's positions are read (tabix).
    positions = universe[["chrom", "pos"]]
    dosages = read_dosages(snakemake.input.vcf, universe["rsid"], list(donors["sample"]), positions=positions)
    print(f"{len(donors)} donors, {means.shape[1]} embedding dimensions, {dosages.shape[1]} variants")
    print(f"covariates: {', '.join(donors.columns[1:])}")
    save_table(snakemake.output.donors, donors.reset_index())
    with atomic_path(snakemake.output.dosages) as tmp:
        dosages[list(universe["rsid"])].to_csv(tmp, sep="\t", compression="gzip")
    with atomic_path(snakemake.output.means) as tmp, open(tmp, "wb") as fh:
        np.save(fh, means)
