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
    return DATASET_PLANS[wildcards.dataset].input_settings()


def dataset_fit_settings(wildcards):
    return DATASET_PLANS[wildcards.dataset].fit_settings(
        wildcards.label, wildcards.model
    )


def dataset_fit_job_minutes(wildcards, input, threads, attempt):
    """A fit_dataset job's runtime (own_bags/plan.py: DatasetPlan.fit_runtime)."""
    return DATASET_PLANS[wildcards.dataset].fit_runtime(
        wildcards.label,
        wildcards.model,
        wildcards.unit,
        config["models"][wildcards.model],
        input.table,
        input.size_mb,
        threads,
        attempt,
        SCALING,
    )


def dataset_outputs():
    outputs = []
    for name in DATASETS:
        outputs += [
            f"results/datasets/{name}/{name}_comparison.md",
            f"results/datasets/{name}/instance_weights.tsv.gz",
            f"results/datasets/{name}/instances_with_weights.h5ad",
        ]
    return outputs
