"""Held-out comparison of every model per label (mean ± s.e.), metrics per fold, timings, the nested
search's choices, per-instance scores (a table and an .h5ad copy of the instances) and the figure."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.io import atomic_path, log_to, save_table, save_tsv_gz
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.workflow.provenance import provenance_footer, provenance_lines
from mixmil_workflow.own_bags.report import (
    PREDICTION_COLUMNS,
    collect,
    comparison,
    concat_fit_tables,
    comparison_figure,
    comparison_html,
    comparison_markdown,
    instance_weight_table,
    write_weighted_h5ad,
)

snakemake = snakemake  # noqa: F821  (injected by Snakemake)


with log_to(snakemake.log[0]):
    labels = {k: LabelSpec(**v) for k, v in snakemake.params.labels.items()}
    runs = snakemake.params.runs
    provenance = snakemake.params.provenance
    predictions = collect(runs, snakemake.input.predictions, snakemake.params.types)
    table, per_fold = comparison(predictions, labels)
    columns = "; ".join(f"{name}: {meaning}" for name, meaning in PREDICTION_COLUMNS.items())
    save_table(snakemake.output.predictions, predictions, provenance={**provenance, "note": f"columns: {columns}"})
    save_table(snakemake.output.tsv, table.round(4), provenance=provenance)
    save_table(snakemake.output.folds, per_fold.round(4), provenance=provenance)
    shown = comparison_markdown(table)
    with atomic_path(snakemake.output.md) as tmp:
        tmp.write_text(shown + provenance_footer(provenance))
    with atomic_path(snakemake.output.html) as tmp:
        tmp.write_text(comparison_html(table, snakemake.wildcards.dataset, provenance_lines(provenance)))
    print(shown)
    comparison_figure(table, snakemake.wildcards.dataset, snakemake.output.figure)
    # Wall times depend on the machine and its load: kept apart so that the result tables above are
    # byte-identical across identical runs.
    save_table(snakemake.output.timings, concat_fit_tables(runs, snakemake.input.timings).round(3))
    save_table(snakemake.output.search, concat_fit_tables(runs, snakemake.input.search), provenance=provenance)

    id_column = snakemake.params.id_column
    bags = pd.read_csv(snakemake.input.table, sep="\t", dtype={id_column: str})
    names = pd.read_csv(snakemake.input.names, sep="\t")["obs_name"]
    weights = instance_weight_table(
        ((label, model, path) for (label, model, _), path in zip(runs, snakemake.input.weights, strict=True)),
        bags,
        names,
        id_column,
    )
    save_tsv_gz(snakemake.output.weights, weights)
    write_weighted_h5ad(snakemake.input.instances, weights, snakemake.output.h5ad)
