"""Evaluate every simulation run on its test bags; write the long table, the summary and the per-axis table."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to, save_table
from mixmil_workflow.studies.simulation import (
    axis_table,
    default_scenario_table,
    evaluate_runs,
    hyperparameter_table,
    paired_markdown_table,
    paired_table,
    summarise_runs,
)

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    long = evaluate_runs(
        snakemake.params.runs, snakemake.params.run_data, snakemake.input.predictions, snakemake.params.top_fraction
    )
    summary = summarise_runs(long)
    save_table(snakemake.output.long, long, provenance=snakemake.params.provenance)
    save_table(snakemake.output.summary, summary.round(4), provenance=snakemake.params.provenance)
    save_table(snakemake.output.summary_md, summary.round(3), provenance=snakemake.params.provenance)
    save_table(
        snakemake.output.axes,
        axis_table(summary, snakemake.params.simulation).round(4),
        provenance=snakemake.params.provenance,
    )
    default = default_scenario_table(summary)
    print(default.to_string(index=False))
    save_table(
        [snakemake.output.default_md, snakemake.output.default_html], default, provenance=snakemake.params.provenance
    )
    paired = paired_table(long, snakemake.params.reference)
    save_table(snakemake.output.paired, paired.round(4), provenance=snakemake.params.provenance)
    save_table(
        [snakemake.output.paired_md, snakemake.output.paired_html],
        paired_markdown_table(paired, snakemake.params.reference),
        provenance=snakemake.params.provenance,
    )
    save_table(
        snakemake.output.hyperparameters,
        hyperparameter_table(snakemake.params.runs, snakemake.input.predictions),
        provenance=snakemake.params.provenance,
    )
