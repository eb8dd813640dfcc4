"""Genotypes of the donors with cells, from the VCF to binary PLINK (PLINK 1.9)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from pathlib import Path

import anndata

from mixmil_workflow.genetics.plink import vcf_to_bed, plink_memory_mb
from mixmil_workflow.genetics.samples import vcf_sample_of
from mixmil_workflow.io import log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    donors = anndata.read_h5ad(snakemake.input.cells, backed="r").obs["donor_id"].astype(str).unique()
    samples = sorted({vcf_sample_of(d) for d in donors})
    print(f"{len(donors)} donors with cells -> {len(samples)} VCF samples")
    prefix = Path(snakemake.output[0]).with_suffix("")
    fam = vcf_to_bed(
        snakemake.input.vcf, samples, prefix, snakemake.threads, plink_memory_mb(snakemake.resources.mem_mb)
    )
    print(f"binary PLINK: {len(fam)} samples")
