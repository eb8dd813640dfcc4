"""Leading genetic PCs of the donors after QC and LD pruning (PLINK 1.9)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from pathlib import Path

from mixmil_workflow.genetics.plink import genetic_pcs, plink_memory_mb
from mixmil_workflow.io import log_to, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    bed = Path(snakemake.input[0]).with_suffix("")
    work = Path(snakemake.output[0]).with_name("pca")
    pcs = genetic_pcs(
        bed,
        work,
        n_pcs=snakemake.params.n_pcs,
        threads=snakemake.threads,
        memory_mb=plink_memory_mb(snakemake.resources.mem_mb),
    )
    print(pcs.describe().round(3).to_string())
    save_table(snakemake.output[0], pcs.reset_index().round(6))
