"""Fig. E.3: the cells MixMIL weighs most for the labels it predicts best; their cell types (odds
ratios) and a GLMM on only the top against only the bottom cells of every donor."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import pandas as pd

from mixmil_workflow.genetics.cell_states import (
    choose_examples,
    example_tables,
    figure_e3,
    odds_markdown,
    spearman_of,
    weights_by_label,
)
from mixmil_workflow.genetics.results import display_name, spearman_matrix
from mixmil_workflow.io import log_to, read_table, save_table
from mixmil_workflow.models.registry import model_types

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    settings = {"n_examples": 3, "top_fraction": 0.05} | dict(params.settings)
    fraction = settings["top_fraction"]
    reference = params.reference
    variants = read_table(snakemake.input.variants)
    labels = list(variants.loc[variants["role"] == "label", "rsid"])
    models = [reference, *params.baselines]
    matrix = spearman_matrix(read_table(snakemake.input.spearman), labels, models)
    examples = choose_examples(matrix, reference, list(params.baselines), settings["n_examples"])
    print(f"labels shown (largest {reference} gain over the best baseline): {examples}")

    table = read_table(snakemake.input.table)
    table["donor_id"] = table["donor_id"].astype(str)
    x = np.load(snakemake.input.matrix)
    names = pd.read_csv(snakemake.input.names, sep="\t")["obs_name"]
    cell_map = pd.read_csv(snakemake.input.cell_map, sep="\t").set_index("obs_name").loc[names].reset_index()
    weights = weights_by_label(snakemake.input.weights, table, len(x))
    covariates = table[list(params.covariates)].to_numpy(float)

    cell_group = cell_map["cell_group"].astype(str).to_numpy()
    odds, predictions, masks = example_tables(
        examples, table, x, weights, cell_group, covariates, fraction, params.seed
    )
    for label in examples:
        pred = predictions[predictions["label"] == label]
        print(
            f"{label}: {reference} rho {matrix.loc[label, reference]:.3f}; GLMM on top cells rho "
            f"{spearman_of(pred['top'], pred['y']):.3f}, on bottom cells {spearman_of(pred['bottom'], pred['y']):.3f}"
        )
        print(odds[odds["label"] == label].round(3).to_string(index=False))
    save_table(snakemake.output.odds, odds.round(6), provenance=params.provenance)
    save_table(snakemake.output.top_bottom, predictions.round(6), provenance=params.provenance)
    save_table(
        [snakemake.output.odds_md, snakemake.output.odds_html],
        odds_markdown(odds).round(3),
        provenance=params.provenance,
    )
    name = display_name(reference, model_types(is_reference=True)[0])
    figure_e3(examples, cell_map, masks, odds, predictions, name, fraction, snakemake.output.figure)
