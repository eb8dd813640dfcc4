"""Summarise the microscopy sweep (Table C.5 analogue) and select by validation F1 (Table C.6)."""

from mixmil_workflow.io import log_to, save_table
from mixmil_workflow.microscopy.study import summarise_microscopy_sweep
from mixmil_workflow.sweep import write_selected_models

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    combos = snakemake.params.combinations
    runs = [(*run, path) for run, path in zip(snakemake.params.runs, snakemake.input, strict=True)]
    grid, best = summarise_microscopy_sweep(runs, combos)
    save_table(snakemake.output.grid, grid.round(4), provenance=snakemake.params.provenance)
    save_table(snakemake.output.grid_md, grid.round(3), provenance=snakemake.params.provenance)
    save_table(snakemake.output.selected_md, best.round(3), provenance=snakemake.params.provenance)
    print(best.to_string(index=False))
    write_selected_models(snakemake.output.selected_yaml, best, combos)
