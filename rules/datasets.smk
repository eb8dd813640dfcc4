# Bring your own bags: an AnnData of instance embeddings + a bag table -> checked, bag-ordered data ->
# every label x model x fold -> out-of-fold comparison, per-instance weights and a figure per dataset.


rule example_dataset:
    output:
        h5ad="resources/example_dataset/cells.h5ad",
        table="resources/example_dataset/bags.tsv",
    log:
        "logs/datasets/example_dataset.log",
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/datasets/example.py"),
        seed=derive_seed(config["seed"], "example-dataset"),
    script:
        "../scripts/datasets/example.py"


rule prepare_dataset:
    input:
        instances=lambda wc: DATASETS[wc.dataset]["instances"],
        table=lambda wc: DATASETS[wc.dataset]["table"],
    output:
        matrix="results/datasets/{dataset}/prepared/instances.npy",
        table="results/datasets/{dataset}/prepared/bags.tsv",
        names="results/datasets/{dataset}/prepared/instance_names.tsv.gz",
    log:
        "logs/datasets/{dataset}/prepare.log",
    conda:
        "../envs/mil.yaml"
    resources:
        mem_mb=memory_mb(1500, per_input_mb=3),
    params:
        code=package_code("scripts/datasets/prepare.py"),
        dataset=dataset_input_settings,
        seeds=dataset_fold_seeds,
    script:
        "../scripts/datasets/prepare.py"


rule fit_dataset:
    input:
        matrix="results/datasets/{dataset}/prepared/instances.npy",
        table="results/datasets/{dataset}/prepared/bags.tsv",
    output:
        # one model file (and its preprocessing) per (repeat, fold) of the job's unit
        **saved_model(
            "datasets",
            directory("results/datasets/{dataset}/models/{label}/{model}/{unit}"),
        ),
        predictions="results/datasets/{dataset}/predictions/{label}/{model}/{unit}.tsv",
        weights="results/datasets/{dataset}/instance_weights/{label}/{model}/{unit}.npz",
        timings="results/datasets/{dataset}/timings/{label}/{model}/{unit}.tsv",
        search="results/datasets/{dataset}/tuning/{label}/{model}/{unit}.tsv",
    log:
        "logs/datasets/{dataset}/fit/{label}/{model}/{unit}.log",
    benchmark:
        "logs/benchmarks/datasets/{dataset}/fit/{label}/{model}/{unit}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(config["models"][wc.model])
    resources:
        gpu=lambda wc: model_gpus(config["models"][wc.model]),
        mem_mb=memory_mb(1500, per_input_mb=2),
        # the recorded cost of the model at the data's size (workflow/resources.py: dataset_fit_runtime)
        runtime=lambda wc, input, threads, attempt: dataset_fit_job_minutes(
            wc, input, threads, attempt
        ),
    params:
        code=package_code("scripts/datasets/fit.py"),
        model=lambda wc: config["models"][wc.model],
        settings=dataset_fit_settings,
        folds=dataset_unit_folds,
        seeds=dataset_fit_seeds,
        device=config["device"],
    script:
        "../scripts/datasets/fit.py"


rule compare_dataset:
    input:
        predictions=dataset_fit_files("predictions", "tsv"),
        weights=dataset_fit_files("instance_weights", "npz"),
        timings=dataset_fit_files("timings", "tsv"),
        search=dataset_fit_files("tuning", "tsv"),
        table="results/datasets/{dataset}/prepared/bags.tsv",
        names="results/datasets/{dataset}/prepared/instance_names.tsv.gz",
        instances=lambda wc: DATASETS[wc.dataset]["instances"],
    output:
        tsv="results/datasets/{dataset}/{dataset}_comparison.tsv",
        md="results/datasets/{dataset}/{dataset}_comparison.md",
        html=report(
            "results/datasets/{dataset}/{dataset}_comparison.html",
            caption="../report/dataset_comparison.rst",
            category="Your datasets",
            subcategory="{dataset}",
        ),
        folds="results/datasets/{dataset}/{dataset}_fold_metrics.tsv",
        predictions="results/datasets/{dataset}/out_of_fold_predictions.tsv",
        timings="results/datasets/{dataset}/{dataset}_timings.tsv",
        search="results/datasets/{dataset}/{dataset}_tuning.tsv",
        weights="results/datasets/{dataset}/instance_weights.tsv.gz",
        h5ad="results/datasets/{dataset}/instances_with_weights.h5ad",
        figure=report(
            "results/datasets/{dataset}/{dataset}_comparison.png",
            caption="../report/dataset_comparison.rst",
            category="Your datasets",
            subcategory="{dataset}",
        ),
    log:
        "logs/datasets/{dataset}/compare.log",
    conda:
        "../envs/mil.yaml"
    params:
        code=package_code("scripts/datasets/compare.py"),
        runs=lambda wc: DATASET_RUNS[wc.dataset],
        provenance=dataset_provenance,
        labels=lambda wc: {
            k: vars(v) for k, v in DATASET_PLANS[wc.dataset].labels.items()
        },
        types={name: spec["type"] for name, spec in config["models"].items()},
        id_column=lambda wc: DATASETS[wc.dataset]["id_column"],
    script:
        "../scripts/datasets/compare.py"
