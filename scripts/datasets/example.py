"""Generate the bring-your-own-bags example dataset (cells.h5ad + bags.tsv)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to
from mixmil_workflow.own_bags.example import write_example_dataset

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    write_example_dataset(snakemake.output.h5ad, snakemake.output.table, seed=snakemake.params.seed)
    print(f"wrote {snakemake.output.h5ad} and {snakemake.output.table}")
