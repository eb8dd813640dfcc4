"""Summarise the sweep (Table C.1 analogue) and select each model's best combination (Table C.2)."""

from mixmil_workflow.io import log_to
from mixmil_workflow.sweep import save_sweep_tables, summarise_sweep

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    combos, out = snakemake.params.combinations, snakemake.output
    runs = [(*run, path) for run, path in zip(snakemake.params.runs, snakemake.input, strict=True)]
    grid, best = summarise_sweep(runs, combos)
    save_sweep_tables(
        grid, best, combos, snakemake.params.provenance, out.grid, out.grid_md, out.selected_md, out.selected_yaml,
        selected_path=out.selected,
    )  # fmt: skip
