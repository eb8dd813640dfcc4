"""Summarise the Camelyon16 sweep (Table C.7 analogue) and select by validation loss (Table C.8)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.camelyon16.study import summarise_camelyon16_sweep
from mixmil_workflow.io import log_to
from mixmil_workflow.studies.sweep import save_sweep_tables

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    combos, out = snakemake.params.combinations, snakemake.output
    runs = [(model, combo, path) for (model, combo), path in zip(snakemake.params.runs, snakemake.input, strict=True)]
    grid, best = summarise_camelyon16_sweep(runs, combos)
    save_sweep_tables(grid, best, combos, snakemake.params.provenance, out)
