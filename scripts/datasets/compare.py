"""Out-of-fold comparison of every model per label, per-instance weights, and the comparison figure."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.io import atomic_path, log_to, save_table
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.study import comparison_figure, comparison_table, instance_weight_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    labels = {k: LabelSpec(**v) for k, v in snakemake.params.labels.items()}
    types = snakemake.params.types
    runs = snakemake.params.runs
    stacked, comparison = comparison_table(
        (
            (label, model, types[model], fold, path)
            for (label, model, fold), path in zip(runs, snakemake.input.predictions, strict=True)
        ),
        labels,
    )
    save_table(snakemake.output.predictions, stacked)
    save_table(snakemake.output.tsv, comparison.round(4), provenance=snakemake.params.provenance)
    shown = comparison[["label", "likelihood", "model", "metric", "value", "n_bags", "train_seconds"]]
    save_table(snakemake.output.md, shown.round(3), provenance=snakemake.params.provenance)
    print(shown.round(3).to_markdown(index=False))
    comparison_figure(comparison, snakemake.wildcards.dataset, snakemake.output.figure)

    table = pd.read_csv(snakemake.input.table, sep="\t", dtype={snakemake.params.id_column: str})
    names = pd.read_csv(snakemake.input.names, sep="\t")["obs_name"]
    weights = instance_weight_table(
        ((label, model, path) for (label, model, _), path in zip(runs, snakemake.input.weights, strict=True)),
        table,
        names,
        snakemake.params.id_column,
    )
    with atomic_path(snakemake.output.weights) as tmp:
        weights.to_csv(tmp, sep="\t", index=False, compression="gzip")
