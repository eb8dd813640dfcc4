# Histopathology branch (paper Section 4.4, Table 3): DSMIL Camelyon16 patch features -> AnnData ->
# splits and preprocessing -> every model x seed -> Table 3, ROC curves and instance-score strips.


rule camelyon16_demo_archive:
    output:
        archive="resources/camelyon16/demo/camelyon16_features.zip",
        truth="resources/camelyon16/demo/patch_truth.tsv.gz",
    log:
        "logs/camelyon16/demo_archive.log",
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/camelyon16/demo_archive.py"),
        demo=CAMELYON16["demo"],
        seed=derive_seed(config["seed"], "camelyon16-demo"),
    script:
        "../scripts/camelyon16/demo_archive.py"


rule download_camelyon16:
    output:
        "resources/camelyon16/camelyon16_features.zip",
    log:
        "logs/camelyon16/download.log",
    # The script retries and resumes by itself; a rule retry covers a crash of the job.
    retries: 1
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/download.py"),
        source=lambda wc: camelyon16_source(),
        retries=5,
    script:
        "../scripts/download.py"


rule convert_camelyon16:
    input:
        camelyon16_archive(),
    output:
        h5ad="results/camelyon16/data/instances.h5ad",
        slides="results/camelyon16/data/slides.tsv",
    log:
        "logs/camelyon16/convert.log",
    benchmark:
        "logs/benchmarks/camelyon16/convert.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(240),
    params:
        code=package_code("scripts/camelyon16/convert.py"),
    script:
        "../scripts/camelyon16/convert.py"


rule prepare_camelyon16:
    input:
        h5ad="results/camelyon16/data/instances.h5ad",
        slides="results/camelyon16/data/slides.tsv",
    output:
        splits="results/camelyon16/data/splits.tsv",
        preprocessing="results/camelyon16/data/preprocessing.npz",
    log:
        "logs/camelyon16/prepare.log",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/camelyon16/prepare.py"),
        validation_fraction=CAMELYON16["validation_fraction"],
        pca_components=CAMELYON16.get("pca_components"),
        seed=derive_seed(config["seed"], "camelyon16-split"),
    script:
        "../scripts/camelyon16/prepare.py"


rule fit_camelyon16:
    input:
        h5ad="results/camelyon16/data/instances.h5ad",
        splits="results/camelyon16/data/splits.tsv",
        preprocessing="results/camelyon16/data/preprocessing.npz",
    output:
        **saved_model("camelyon16", "results/camelyon16/models/{model}/seed{seed}.pt"),
        predictions="results/camelyon16/predictions/{model}/seed{seed}.tsv",
        instance_scores="results/camelyon16/instance_scores/{model}/seed{seed}.npz",
    log:
        "logs/camelyon16/fit/{model}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/camelyon16/fit/{model}/seed{seed}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(config["models"][wc.model])
    resources:
        gpu=lambda wc: model_gpus(config["models"][wc.model]),
        # benchmarks/camelyon16_memory.py: peak ~ 1.1 GB + 1.25 x the instance matrix (~ the h5ad).
        mem_mb=memory_mb(1500, per_input_mb=1.5),
        runtime=runtime_minutes(720),
    params:
        code=package_code("scripts/camelyon16/fit.py"),
        model=lambda wc: config["models"][wc.model],
        seed=camelyon16_fit_seed,
        device=config["device"],
    script:
        "../scripts/camelyon16/fit.py"


rule camelyon16_table3:
    input:
        unpack(camelyon16_truth),
        predictions=camelyon16_prediction_files,
        instance_scores=camelyon16_instance_files,
    output:
        tsv="results/camelyon16/tables/table3_auc.tsv",
        md="results/camelyon16/tables/table3_auc.md",
        html=report(
            "results/camelyon16/tables/table3_auc.html",
            caption="../report/table3_camelyon16.rst",
            category="Camelyon16",
        ),
        runs="results/camelyon16/tables/camelyon16_runs.tsv",
        instance_auc="results/camelyon16/tables/instance_auc.tsv",
        roc=report(
            "results/camelyon16/figures/roc.png",
            caption="../report/roc_camelyon16.rst",
            category="Camelyon16",
        ),
        roc_svg="results/camelyon16/figures/roc.svg",
        strips=report(
            "results/camelyon16/figures/instance_scores.png",
            caption="../report/instance_scores_camelyon16.rst",
            category="Camelyon16",
        ),
    log:
        "logs/camelyon16/table3.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/camelyon16/table3.py"),
        runs=camelyon16_runs(),
        provenance=table_provenance(CAMELYON16_MODELS, camelyon16=CAMELYON16),
        types={m: config["models"][m]["type"] for m in CAMELYON16_MODELS},
        heatmap_slides=CAMELYON16["heatmap_slides"],
    script:
        "../scripts/camelyon16/table3.py"


# Optional sweep (Appendix C.3, Tables C.7/C.8): each grid combination on the training slides,
# scored on the validation slides; the lowest validation loss is selected.
rule fit_camelyon16_sweep:
    input:
        h5ad="results/camelyon16/data/instances.h5ad",
        splits="results/camelyon16/data/splits.tsv",
        preprocessing="results/camelyon16/data/preprocessing.npz",
    output:
        predictions="results/camelyon16/sweep/predictions/{model}/c{combo}.tsv",
        instance_scores=temp(
            "results/camelyon16/sweep/instance_scores/{model}/c{combo}.npz"
        ),
    log:
        "logs/camelyon16/sweep/{model}/c{combo}.log",
    benchmark:
        "logs/benchmarks/camelyon16/sweep/{model}/c{combo}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(CAMELYON16_SWEEP_COMBINATIONS[wc.model][int(wc.combo)])
    resources:
        gpu=lambda wc: model_gpus(
            CAMELYON16_SWEEP_COMBINATIONS[wc.model][int(wc.combo)]
        ),
        mem_mb=memory_mb(1500, per_input_mb=1.5),
        runtime=runtime_minutes(720),
    params:
        code=package_code("scripts/camelyon16/fit.py"),
        model=lambda wc: CAMELYON16_SWEEP_COMBINATIONS[wc.model][int(wc.combo)],
        seed=camelyon16_sweep_seed,
        device=config["device"],
    script:
        "../scripts/camelyon16/fit.py"


rule select_camelyon16_sweep:
    input:
        camelyon16_sweep_files,
    output:
        grid="results/camelyon16/sweep/sweep_grid.tsv",
        grid_md="results/camelyon16/sweep/sweep_grid.md",
        grid_html=report(
            "results/camelyon16/sweep/sweep_grid.html",
            caption="../report/sweep_camelyon16.rst",
            category="Camelyon16",
        ),
        selected_md="results/camelyon16/sweep/sweep_selected.md",
        selected_yaml="results/camelyon16/sweep/selected_models.yaml",
    log:
        "logs/camelyon16/sweep/select.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/camelyon16/select_sweep.py"),
        runs=CAMELYON16_SWEEP_RUNS,
        provenance=table_provenance(
            list(CAMELYON16_SWEEP_COMBINATIONS), camelyon16=CAMELYON16
        ),
        combinations=CAMELYON16_SWEEP_COMBINATIONS,
    script:
        "../scripts/camelyon16/select_sweep.py"
