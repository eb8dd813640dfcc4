"""Score every sweep fit on its validation bags, summarise the sweep (Table C.1 analogue) and select each
model's best combination (Table C.2)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to, save_table
from mixmil_workflow.studies.simulation import evaluate_runs
from mixmil_workflow.studies.sweep import save_sweep_tables, summarise_sweep

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    combos, out = snakemake.params.combinations, snakemake.output
    long = evaluate_runs(
        snakemake.params.runs,
        snakemake.params.run_data,
        snakemake.input.predictions,
        snakemake.params.top_fraction,
        keys=("model", "combination", "repeat"),
    )
    save_table(out.metrics, long, provenance=snakemake.params.provenance)
    grid, best = summarise_sweep(long, combos)
    save_sweep_tables(grid, best, combos, snakemake.params.provenance, out)
