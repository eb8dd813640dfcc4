# The plan of the datasets branch (rules/datasets.smk): its settings, runs, seeds, targets and input functions.


DATASETS = config["datasets"]
DATASET_LABELS = {
    name: {col: LabelSpec.parse(col, spec) for col, spec in ds["labels"].items()}
    for name, ds in DATASETS.items()
}
for _name, _ds in DATASETS.items():
    check_models(_name, DATASET_LABELS[_name], _ds["models"], config["models"])
DATASET_RUNS = {
    name: [
        (label, model, fold)
        for label in ds["labels"]
        for model in ds["models"]
        for fold in protocol_folds(ds["protocol"])
    ]
    for name, ds in DATASETS.items()
}


def dataset_provenance(wildcards):
    ds = DATASETS[wildcards.dataset]
    return table_provenance(ds["models"], datasets={wildcards.dataset: ds})


def dataset_prediction_files(wildcards):
    return [
        f"results/datasets/{wildcards.dataset}/predictions/{label}/{model}/fold{fold}.tsv"
        for label, model, fold in DATASET_RUNS[wildcards.dataset]
    ]


def dataset_weight_files(wildcards):
    return [
        f"results/datasets/{wildcards.dataset}/instance_weights/{label}/{model}/fold{fold}.npz"
        for label, model, fold in DATASET_RUNS[wildcards.dataset]
    ]


def dataset_fit_seed(wildcards):
    return derive_seed(
        config["seed"],
        "dataset-fit",
        wildcards.dataset,
        wildcards.label,
        wildcards.model,
        wildcards.fold,
    )


def dataset_outputs():
    return [f"results/datasets/{name}/{name}_comparison.md" for name in DATASETS] + [
        f"results/datasets/{name}/instance_weights.tsv.gz" for name in DATASETS
    ]
