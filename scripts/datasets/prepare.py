"""Check a bring-your-own-bags dataset and write it in bag order with its folds (before any training)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to
from mixmil_workflow.own_bags.input import load_bag_dataset
from mixmil_workflow.own_bags.protocol import dataset_folds
from mixmil_workflow.own_bags.study import save_prepared

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    config = snakemake.params.dataset
    table_name = f"bag table {snakemake.input.table}"
    dataset = load_bag_dataset(
        snakemake.input.instances,
        snakemake.input.table,
        config["labels"],
        bag_column=config["bag_column"],
        id_column=config["id_column"],
        embedding=config["embedding"],
        covariates=config["covariates"],
        missing_allowed=list(config["labels"]),  # which models may see them is checked per fit
    )
    protocol = config["protocol"]
    folds, stratified_by = dataset_folds(dataset, protocol, snakemake.params.seeds, table_name)
    x = dataset.bags.x
    constant = int((x.amax(0) == x.amin(0)).sum())
    print(
        f"{dataset.n_bags} bags, {dataset.bags.n_instances} instances x {dataset.bags.n_features}; "
        f"bag sizes {int(dataset.bags.sizes.min())}-{int(dataset.bags.sizes.max())}; protocol {protocol}"
        + (f"; stratified by {stratified_by!r}" if stratified_by else "")
    )
    if constant:
        print(
            f"{constant} feature(s) are constant over all instances; each fit drops them (preprocessing.drop_constant)"
        )
    save_prepared(dataset, folds, snakemake.output.matrix, snakemake.output.table, snakemake.output.names)
