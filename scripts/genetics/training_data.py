"""The genetics training data: donors as bags of cell embeddings, dosages of the labels (and negative
controls) as Binomial(2) outputs, covariates, and the stacked cross-validation folds."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.genetics.training import (
    LABEL_LIKELIHOOD,
    genetics_bag_table,
    negative_controls,
    trained_variants,
)
from mixmil_workflow.io import log_to, read_table, save_table
from mixmil_workflow.own_bags.input import load_bag_dataset, stacked_folds
from mixmil_workflow.own_bags.study import save_prepared

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    labels = read_table(snakemake.input.labels)
    screen = read_table(snakemake.input.screen)
    controls = negative_controls(
        screen[~screen["rsid"].isin(labels["rsid"])], params.min_spearman, params.n_controls, params.control_seed
    )
    variants = trained_variants(labels, controls)
    print(f"{len(labels)} labels and {len(controls)} negative control(s): {', '.join(variants['rsid'])}")
    donors = read_table(snakemake.input.donors)
    dosages = pd.read_csv(snakemake.input.dosages, sep="\t", index_col="sample")
    table = genetics_bag_table(donors, dosages, variants["rsid"])
    dataset = load_bag_dataset(
        snakemake.input.cells,
        table,
        {rsid: LABEL_LIKELIHOOD for rsid in variants["rsid"]},
        bag_column="donor_id",
        id_column="donor_id",
        embedding="X_scvi",
        covariates=list(params.covariates),
    )
    folds = stacked_folds(dataset.n_bags, params.n_folds, params.fold_seed)
    sizes = dataset.bags.sizes
    print(
        f"{dataset.n_bags} donors, {dataset.bags.n_instances} cells x {dataset.bags.n_features} embedding dimensions; "
        f"cells per donor {int(sizes.min())}-{int(sizes.max())}; {params.n_folds} folds; "
        f"covariates {', '.join(params.covariates)}"
    )
    save_prepared(dataset, folds, snakemake.output.matrix, snakemake.output.table, snakemake.output.names)
    save_table(snakemake.output.variants, variants)
