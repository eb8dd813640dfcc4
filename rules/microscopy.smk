# Microscopy branch (paper Section 4.4, Table 2, Tables E.3/E.4, Fig. 4/E.4): BBBC021 plate zips ->
# illumination correction per plate and channel -> single-cell crops at the nucleus centres -> ResNet50
# embeddings -> PCA on each repeat's training plates -> wells as bags, MoA labels -> every model -> tables
# and top/bottom-weighted cell montages.


rule bbbc021_demo:
    output:
        plates=expand(
            "resources/bbbc021/demo/BBBC021_v1_images_{plate}.zip",
            plate=MICROSCOPY_PLATES,
        ),
        image="resources/bbbc021/demo/BBBC021_v1_image.csv",
        moa="resources/bbbc021/demo/BBBC021_v1_moa.csv",
        compound="resources/bbbc021/demo/BBBC021_v1_compound.csv",
        nuclei="resources/bbbc021/demo/ljosa_jbiomolscreen_2013.sqlite",
        truth="resources/bbbc021/demo/truth.tsv.gz",
    log:
        "logs/microscopy/bbbc021_demo.log",
    conda:
        "../envs/microscopy.yaml"
    params:
        code=package_code("scripts/microscopy/demo.py"),
        demo=MICROSCOPY["demo"],
        seed=derive_seed(config["seed"], "bbbc021-demo"),
    script:
        "../scripts/microscopy/demo.py"


rule download_bbbc021:
    output:
        "resources/bbbc021/download/{file}",
    log:
        "logs/microscopy/download/{file}.log",
    wildcard_constraints:
        file="|".join(re.escape(name) for name in BBBC021_DOWNLOADS),
    # The script retries and resumes by itself; a rule retry covers a crash of the job.
    retries: 1
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/download.py"),
        source=bbbc021_download_source,
        retries=5,
    script:
        "../scripts/download.py"


rule microscopy_metadata:
    input:
        image=bbbc021_input("image"),
        moa=bbbc021_input("moa"),
        compound=bbbc021_input("compound"),
        nuclei=bbbc021_input("nuclei"),
    output:
        images="results/microscopy/data/images.tsv",
        wells="results/microscopy/data/wells.tsv",
        nuclei="results/microscopy/data/nuclei.tsv.gz",
        summary="results/microscopy/data/wells_per_moa.md",
    log:
        "logs/microscopy/metadata.log",
    conda:
        "../envs/microscopy.yaml"
    resources:
        # four columns of the Ljosa et al. nucleus table (all 13,200 fields, about 1-2 million rows)
        mem_mb=memory_mb(4000),
    params:
        code=package_code("scripts/microscopy/metadata.py"),
        plates=MICROSCOPY_PLATES,
        exclude_moas=MICROSCOPY["exclude_moas"],
        n_repeats=len(MICROSCOPY_REPEATS),
        seed=derive_seed(config["seed"], "microscopy-split"),
    script:
        "../scripts/microscopy/metadata.py"


# A plate's illumination, crops and embeddings run one after another in one cluster submission (group
# bbbc021_plate: one per plate, its resources the largest of the three, runtimes added).
rule illumination_bbbc021:
    input:
        bbbc021_plate_zip,
    output:
        "results/microscopy/illumination/{plate}.npz",
    log:
        "logs/microscopy/illumination/{plate}.log",
    benchmark:
        "logs/benchmarks/microscopy/illumination/{plate}.tsv"
    group:
        cluster_group("bbbc021_plate")
    conda:
        "../envs/microscopy.yaml"
    params:
        code=package_code("scripts/microscopy/illumination.py"),
        sigma=MICROSCOPY["illumination"]["sigma"],
        robust_percentile=MICROSCOPY["illumination"]["robust_percentile"],
    script:
        "../scripts/microscopy/illumination.py"


rule crop_bbbc021:
    input:
        zip=bbbc021_plate_zip,
        illumination="results/microscopy/illumination/{plate}.npz",
        images="results/microscopy/data/images.tsv",
        nuclei="results/microscopy/data/nuclei.tsv.gz",
    output:
        crops="results/microscopy/crops/{plate}.h5",
        table="results/microscopy/crops/{plate}.tsv.gz",
    log:
        "logs/microscopy/crops/{plate}.log",
    benchmark:
        "logs/benchmarks/microscopy/crops/{plate}.tsv"
    group:
        cluster_group("bbbc021_plate")
    conda:
        "../envs/microscopy.yaml"
    resources:
        # the plate's crops are held in memory before writing (about 28 kB per cell)
        mem_mb=memory_mb(4000),
    params:
        code=package_code("scripts/microscopy/crops.py"),
        box=MICROSCOPY["crop_size"],
    script:
        "../scripts/microscopy/crops.py"


rule embed_bbbc021:
    input:
        unpack(
            lambda wc: {
                "crops": f"results/microscopy/crops/{wc.plate}.h5",
                "checkpoint": microscopy_checkpoint(),
            }
        ),
    output:
        embeddings="results/microscopy/embeddings/{plate}.npy",
        metadata="results/microscopy/embeddings/{plate}.json",
    log:
        "logs/microscopy/embed/{plate}.log",
    benchmark:
        "logs/benchmarks/microscopy/embed/{plate}.tsv"
    group:
        cluster_group("bbbc021_plate")
    conda:
        "../envs/microscopy.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=memory_mb(6000),
        runtime=runtime_minutes(240),
    params:
        code=package_code("scripts/microscopy/embed.py"),
        batch_size=MICROSCOPY["embedding_batch_size"],
        seed=derive_seed(config["seed"], "resnet50-init"),
        device=config["device"],
    script:
        "../scripts/microscopy/embed.py"


rule microscopy_features:
    input:
        embeddings=expand(
            "results/microscopy/embeddings/{plate}.npy", plate=MICROSCOPY_PLATES
        ),
        crops=expand("results/microscopy/crops/{plate}.tsv.gz", plate=MICROSCOPY_PLATES),
        wells="results/microscopy/data/wells.tsv",
    output:
        matrix="results/microscopy/features/repeat{repeat}/instances.npy",
        bags="results/microscopy/features/repeat{repeat}/bags.tsv",
        pca="results/microscopy/features/repeat{repeat}/pca.json",
    log:
        "logs/microscopy/features/repeat{repeat}.log",
    conda:
        "../envs/microscopy.yaml"
    resources:
        # all embeddings (2048 floats per cell) plus the PCs
        mem_mb=memory_mb(2000, per_input_mb=3),
    params:
        code=package_code("scripts/microscopy/features.py"),
        n_components=max(MICROSCOPY_PCS),
        validation_fraction=MICROSCOPY["validation_fraction"],
        seed=lambda wc: derive_seed(config["seed"], "microscopy-pca", wc.repeat),
    script:
        "../scripts/microscopy/features.py"


rule fit_microscopy:
    # One job fits every number of components of a repeat: the repeat's PCs are read once, and the demo
    # saves a job start (torch import) per fit.
    input:
        matrix="results/microscopy/features/repeat{repeat}/instances.npy",
        bags="results/microscopy/features/repeat{repeat}/bags.tsv",
    output:
        **saved_model(
            "microscopy",
            expand(
                "results/microscopy/models/{{model}}/pcs{pcs}/repeat{{repeat}}.pt",
                pcs=MICROSCOPY_PCS,
            ),
        ),
        predictions=expand(
            "results/microscopy/predictions/{{model}}/pcs{pcs}/repeat{{repeat}}.tsv",
            pcs=MICROSCOPY_PCS,
        ),
        weights=expand(
            "results/microscopy/instance_weights/{{model}}/pcs{pcs}/repeat{{repeat}}.npz",
            pcs=MICROSCOPY_PCS,
        ),
    log:
        "logs/microscopy/fit/{model}/repeat{repeat}.log",
    benchmark:
        "logs/benchmarks/microscopy/fit/{model}/repeat{repeat}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(config["models"][wc.model])
    resources:
        gpu=lambda wc: model_gpus(config["models"][wc.model]),
        mem_mb=memory_mb(2000, per_input_mb=2),
        runtime=runtime_minutes(120 * len(MICROSCOPY_PCS)),
    params:
        code=package_code("scripts/microscopy/fit.py"),
        model=lambda wc: config["models"][wc.model],
        pcs=MICROSCOPY_PCS,
        seeds=lambda wc: [
            derive_seed(config["seed"], "microscopy-fit", wc.model, pcs, wc.repeat)
            for pcs in MICROSCOPY_PCS
        ],
        device=config["device"],
    script:
        "../scripts/microscopy/fit.py"


rule microscopy_results:
    input:
        predictions=microscopy_prediction_files,
        embeddings=expand(
            "results/microscopy/embeddings/{plate}.json", plate=MICROSCOPY_PLATES
        ),
    output:
        runs="results/microscopy/tables/runs.tsv",
        table2="results/microscopy/tables/table2.tsv",
        table2_md="results/microscopy/tables/table2.md",
        table2_html=report(
            "results/microscopy/tables/table2.html",
            caption="../report/microscopy_table2.rst",
            category="Microscopy",
        ),
        table_e3="results/microscopy/tables/table_e3_f1_per_moa.tsv",
        table_e3_md="results/microscopy/tables/table_e3_f1_per_moa.md",
        table_e3_html=report(
            "results/microscopy/tables/table_e3_f1_per_moa.html",
            caption="../report/microscopy_table_e3.rst",
            category="Microscopy",
        ),
        table_e4="results/microscopy/tables/table_e4_components.tsv",
        table_e4_md="results/microscopy/tables/table_e4_components.md",
        table_e4_html=report(
            "results/microscopy/tables/table_e4_components.html",
            caption="../report/microscopy_table_e4.rst",
            category="Microscopy",
        ),
    log:
        "logs/microscopy/results.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/microscopy/results.py"),
        runs=microscopy_runs(),
        main_components=MICROSCOPY["main_components"],
        provenance=table_provenance(MICROSCOPY_MODELS, microscopy=MICROSCOPY),
    script:
        "../scripts/microscopy/results.py"


rule microscopy_montage:
    input:
        weights=lambda wc: [
            f"results/microscopy/instance_weights/{m}/pcs{MICROSCOPY['main_components']}/repeat0.npz"
            for m in MICROSCOPY_MODELS
        ],
        predictions=lambda wc: [
            f"results/microscopy/predictions/{m}/pcs{MICROSCOPY['main_components']}/repeat0.tsv"
            for m in MICROSCOPY_MODELS
        ],
        bags="results/microscopy/features/repeat0/bags.tsv",
        crops=expand("results/microscopy/crops/{plate}.h5", plate=MICROSCOPY_PLATES),
        tables=expand(
            "results/microscopy/crops/{plate}.tsv.gz", plate=MICROSCOPY_PLATES
        ),
        embeddings=expand(
            "results/microscopy/embeddings/{plate}.json", plate=MICROSCOPY_PLATES
        ),
    output:
        report(
            "results/microscopy/figures/fig_e4_{compound}.png",
            caption="../report/microscopy_fig_e4.rst",
            category="Microscopy",
        ),
    log:
        "logs/microscopy/montage/{compound}.log",
    conda:
        "../envs/microscopy.yaml"
    params:
        code=package_code("scripts/microscopy/montage.py"),
        compound=montage_compound,
        models=MICROSCOPY_MODELS,
        n_cells=MICROSCOPY["montage"]["n_cells"],
    script:
        "../scripts/microscopy/montage.py"


rule microscopy_cell_kinds:
    input:
        weights=lambda wc: [
            f"results/microscopy/instance_weights/{m}/pcs{MICROSCOPY['main_components']}/repeat{r}.npz"
            for m in MICROSCOPY_MODELS
            for r in MICROSCOPY_REPEATS
        ],
        predictions=lambda wc: [
            f"results/microscopy/predictions/{m}/pcs{MICROSCOPY['main_components']}/repeat{r}.tsv"
            for m in MICROSCOPY_MODELS
            for r in MICROSCOPY_REPEATS
        ],
        bags="results/microscopy/features/repeat0/bags.tsv",
        tables=expand(
            "results/microscopy/crops/{plate}.tsv.gz", plate=MICROSCOPY_PLATES
        ),
        truth="resources/bbbc021/demo/truth.tsv.gz",
    output:
        tsv="results/microscopy/tables/demo_cell_kinds.tsv",
        md="results/microscopy/tables/demo_cell_kinds.md",
        html=report(
            "results/microscopy/tables/demo_cell_kinds.html",
            caption="../report/microscopy_cell_kinds.rst",
            category="Microscopy",
        ),
    log:
        "logs/microscopy/cell_kinds.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/microscopy/cell_kinds.py"),
        runs=[(m, r) for m in MICROSCOPY_MODELS for r in MICROSCOPY_REPEATS],
        provenance=table_provenance(MICROSCOPY_MODELS, microscopy=MICROSCOPY),
    script:
        "../scripts/microscopy/cell_kinds.py"


# Optional sweep (Appendix C.2, Tables C.5/C.6): each grid combination trained on a repeat's training
# wells minus the validation wells and scored by F1 (macro) on those; selected by the mean over repeats.
rule fit_microscopy_sweep:
    input:
        matrix="results/microscopy/features/repeat{repeat}/instances.npy",
        bags="results/microscopy/features/repeat{repeat}/bags.tsv",
    output:
        predictions="results/microscopy/sweep/predictions/{model}/c{combo}/repeat{repeat}.tsv",
    log:
        "logs/microscopy/sweep/{model}/c{combo}/repeat{repeat}.log",
    benchmark:
        "logs/benchmarks/microscopy/sweep/{model}/c{combo}/repeat{repeat}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(MICROSCOPY_SWEEP_COMBINATIONS[wc.model][int(wc.combo)])
    resources:
        gpu=lambda wc: model_gpus(
            MICROSCOPY_SWEEP_COMBINATIONS[wc.model][int(wc.combo)]
        ),
        mem_mb=memory_mb(2000, per_input_mb=2),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/microscopy/fit_sweep.py"),
        model=lambda wc: MICROSCOPY_SWEEP_COMBINATIONS[wc.model][int(wc.combo)],
        pcs=MICROSCOPY["main_components"],
        seed=lambda wc: derive_seed(
            config["seed"], "microscopy-sweep", wc.model, wc.combo, wc.repeat
        ),
        device=config["device"],
    script:
        "../scripts/microscopy/fit_sweep.py"


rule select_microscopy_sweep:
    input:
        microscopy_sweep_files,
    output:
        grid="results/microscopy/sweep/sweep_grid.tsv",
        grid_md="results/microscopy/sweep/sweep_grid.md",
        grid_html=report(
            "results/microscopy/sweep/sweep_grid.html",
            caption="../report/sweep_microscopy.rst",
            category="Microscopy",
        ),
        selected_md="results/microscopy/sweep/sweep_selected.md",
        selected_yaml="results/microscopy/sweep/selected_models.yaml",
    log:
        "logs/microscopy/sweep/select.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/microscopy/select_sweep.py"),
        runs=MICROSCOPY_SWEEP_RUNS,
        provenance=table_provenance(
            list(MICROSCOPY_SWEEP_COMBINATIONS), microscopy=MICROSCOPY
        ),
        combinations=MICROSCOPY_SWEEP_COMBINATIONS,
    script:
        "../scripts/microscopy/select_sweep.py"
