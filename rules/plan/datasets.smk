# The plan of the datasets branch (rules/datasets.smk): its settings, runs, seeds, targets and input functions.


DATASETS = config["datasets"]
DATASET_PLANS = {
    name: plan_dataset(name, ds, config["models"]) for name, ds in DATASETS.items()
}
DATASET_RUNS = {
    name: plan.runs(DATASETS[name]["models"]) for name, plan in DATASET_PLANS.items()
}


def dataset_provenance(wildcards):
    ds = DATASETS[wildcards.dataset]
    return table_provenance(ds["models"], datasets={wildcards.dataset: ds})


def dataset_fit_files(kind, extension):
    def files(wildcards):
        return [
            f"results/datasets/{wildcards.dataset}/{kind}/{label}/{model}/{unit}.{extension}"
            for label, model, unit in DATASET_RUNS[wildcards.dataset]
        ]

    return files


def dataset_unit_folds(wildcards):
    return DATASET_PLANS[wildcards.dataset].units[wildcards.unit]


def dataset_fit_seeds(wildcards):
    """One seed per (repeat, fold) fit, from the fit's identity: the same whichever job runs it."""
    return [
        derive_seed(
            config["seed"],
            "dataset-fit",
            wildcards.dataset,
            wildcards.label,
            wildcards.model,
            repeat,
            fold,
        )
        for repeat, fold in dataset_unit_folds(wildcards)
    ]


def dataset_fold_seeds(wildcards):
    """One seed per repeat's fold assignment."""
    protocol = DATASETS[wildcards.dataset]["protocol"]
    return [
        derive_seed(config["seed"], "dataset-folds", wildcards.dataset, repeat)
        for repeat in range(protocol["n_repeats"])
    ]


def dataset_input_settings(wildcards):
    """What the prepare step reads: the dataset's inputs and protocol, not its models or preprocessing,
    so that adding a model or changing preprocessing reruns only the fits that use it.
    """
    ds = DATASETS[wildcards.dataset]
    keys = ("bag_column", "id_column", "embedding", "labels", "covariates", "protocol")
    return {key: ds[key] for key in keys}


def dataset_fit_settings(wildcards):
    """What one label x model's fits depend on besides the prepared data and the model entry."""
    ds = DATASETS[wildcards.dataset]
    return {
        "label": vars(DATASET_PLANS[wildcards.dataset].labels[wildcards.label]),
        "covariates": ds["covariates"],
        "id_column": ds["id_column"],
        "embedding": ds["embedding"],
        "preprocessing": ds["preprocessing"],
        "class_weight": ds["class_weight"],
        "search": ds["tuning"]["search"].get(wildcards.model, {}),
        "inner_folds": ds["tuning"]["inner_folds"],
    }


def dataset_outputs():
    outputs = []
    for name in DATASETS:
        outputs += [
            f"results/datasets/{name}/{name}_comparison.md",
            f"results/datasets/{name}/instance_weights.tsv.gz",
            f"results/datasets/{name}/instances_with_weights.h5ad",
        ]
    return outputs
