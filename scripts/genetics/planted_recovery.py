"""Demo check: out-of-fold Spearman of every model on labels at planted loci and on null variants."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.genetics.results import planted_recovery
from mixmil_workflow.io import log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    spearman = read_table(snakemake.input.spearman)
    variants = read_table(snakemake.input.variants)
    truth = read_table(snakemake.input.truth)
    table = planted_recovery(spearman, variants, truth)[["rsid", "role", "simulated", *snakemake.params.models]]
    print(table.round(3).to_string(index=False))
    save_table(snakemake.output.tsv, table.round(6), provenance=snakemake.params.provenance)
    save_table([snakemake.output.md, snakemake.output.html], table.round(3), provenance=snakemake.params.provenance)
