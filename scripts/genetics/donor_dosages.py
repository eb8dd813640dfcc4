"""The donors (VCF sample, sex, age, genetic PCs), their mean cell embeddings and the allele counts of
every universe variant: the inputs of the GLMM screen and of the labels."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import anndata
import numpy as np

from mixmil_workflow.genetics.labels import donor_mean_embeddings, donor_table
from mixmil_workflow.genetics.vcf import read_dosages, vcf_index
from mixmil_workflow.io import atomic_path, log_to, read_table, save_table, save_tsv_gz

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    cells = anndata.read_h5ad(snakemake.input.cells, backed="r")
    pcs = read_table(snakemake.input.pcs).set_index("sample")
    donors = donor_table(cells.obs, pcs)
    means = donor_mean_embeddings(cells.obsm["X_scvi"], cells.obs["donor_id"].astype(str), donors.index)
    universe = read_table(snakemake.input.universe)
    index = vcf_index(snakemake.input.vcf)
    how = f"at their positions through the index {index}" if index else "streaming the VCF (no .csi/.tbi index)"
    print(f"bcftools: allele counts of {len(universe)} variants for {len(donors)} donors {how} ...", flush=True)
    positions = universe[["chrom", "pos"]]
    dosages = read_dosages(snakemake.input.vcf, universe["rsid"], list(donors["sample"]), positions=positions)
    print(f"{len(donors)} donors, {means.shape[1]} embedding dimensions, {dosages.shape[1]} variants")
    print(f"covariates: {', '.join(donors.columns[1:])}")
    save_table(snakemake.output.donors, donors.reset_index())
    save_tsv_gz(snakemake.output.dosages, dosages[list(universe["rsid"])].reset_index())
    with atomic_path(snakemake.output.means) as tmp, open(tmp, "wb") as fh:
        np.save(fh, means)
