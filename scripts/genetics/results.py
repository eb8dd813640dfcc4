"""Out-of-fold Spearman per genetic label and model; Fig. 3 (wins of MixMIL, binomial tests) and
Table E.2 (mean and sd over labels, paired t-tests). Negative controls are scored but not compared."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.genetics.results import (
    display_name,
    figure_3,
    spearman_matrix,
    stacked_spearman,
    table_e2,
    table_e2_markdown,
    wins,
)
from mixmil_workflow.io import atomic_path, log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    models, reference = list(params.models), params.reference
    names = {m: display_name(m, params.types[m]) for m in models}
    frames = []
    # genetics_fit_files lists the files model by model, fold by fold (expand's order)
    runs = [model for model in models for _ in range(params.n_folds)]
    for model, path in zip(runs, snakemake.input.predictions, strict=True):
        frames.append(read_table(path).assign(model=model))
    predictions = pd.concat(frames, ignore_index=True)
    with atomic_path(snakemake.output.predictions) as tmp:
        predictions.to_csv(tmp, sep="\t", index=False, compression="gzip")
    variants = read_table(snakemake.input.variants)
    spearman = stacked_spearman(predictions).merge(variants, left_on="label", right_on="rsid").drop(columns="rsid")
    save_table(snakemake.output.spearman, spearman.round(6), provenance=params.provenance)

    labels = list(variants.loc[variants["role"] == "label", "rsid"])
    matrix = spearman_matrix(spearman, labels, models)
    print(matrix.round(3).to_string())
    counts = wins(matrix, reference, list(params.baselines))
    print(counts.to_string(index=False))
    save_table(snakemake.output.wins, counts.round(8), provenance=params.provenance)
    figure_3(matrix, reference, counts, names, snakemake.output.figure)
    table = table_e2(matrix, reference, names)
    save_table(snakemake.output.table_e2, table.round(6), provenance=params.provenance)
    shown = table_e2_markdown(table, names[reference], len(labels))
    print(shown.to_markdown(index=False))
    save_table([snakemake.output.table_e2_md, snakemake.output.table_e2_html], shown, provenance=params.provenance)
