# SMMILe (issue 7, Gao et al. 2024): slide-level AUC and patch-level localisation against the known tumour
# mask, next to the attention maps of ABMIL, DSMIL and MixMIL; on the spatial slide simulation and on
# Camelyon16 raw slides (the official release, or the demo generated in its layout and formats).


rule spatial_simulation:
    output:
        "results/smmile/{study}/data/repeat{repeat}.npz",
    log:
        "logs/smmile/{study}/data_repeat{repeat}.log",
    wildcard_constraints:
        study="simulation(_multiclass|_multilabel)?",
    conda:
        "../envs/mil.yaml"
    params:
        code=package_code("scripts/smmile/simulate.py"),
        simulation=lambda wc: {
            **SMMILE["simulation"],
            "task": SPATIAL_STUDY_TASKS[wc.study],
        },
        seed=spatial_simulation_seed,
    script:
        "../scripts/smmile/simulate.py"


rule camelyon16_slides_demo:
    output:
        [path for path, _ in C16_SLIDE_PATHS.values()],
        "resources/camelyon16_slides/demo/training/lesion_annotations.zip",
        "resources/camelyon16_slides/demo/testing/lesion_annotations.zip",
        "resources/camelyon16_slides/demo/testing/reference.csv",
    log:
        "logs/smmile/camelyon16/demo.log",
    conda:
        "../envs/microscopy.yaml"
    params:
        code=package_code("scripts/smmile/slides_demo.py"),
        demo=demo_slide_options(),
        root=lambda wc, output: str(Path(output[-1]).parent.parent),  # <root>/testing/reference.csv
        seed=derive_seed(config["seed"], "camelyon16-slides-demo"),
    script:
        "../scripts/smmile/slides_demo.py"


rule camelyon16_slide_features:
    input:
        slide=lambda wc: C16_SLIDE_PATHS[wc.slide][0],
        annotations=lambda wc: f"{camelyon16_slides_root()}/{C16_SLIDE_PATHS[wc.slide][1]}/lesion_annotations.zip",
    output:
        "results/smmile/camelyon16/patches/{slide}.npz",
    log:
        "logs/smmile/camelyon16/patches/{slide}.log",
    benchmark:
        "logs/benchmarks/smmile/camelyon16/patches/{slide}.tsv"
    conda:
        "../envs/microscopy.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/smmile/slide_features.py"),
        patch_size=C16_SLIDES["patch_size"],
        level=C16_SLIDES["level"],
        min_tissue=C16_SLIDES["min_tissue"],
        batch_size=C16_SLIDES["batch_size"],
        checkpoint=C16_SLIDES.get("checkpoint"),
        classes=C16_CLASSES,
        seed=derive_seed(config["seed"], "camelyon16-slides-encoder"),
        device=config["device"],
    script:
        "../scripts/smmile/slide_features.py"


rule camelyon16_slides_dataset:
    input:
        patches=expand(
            "results/smmile/camelyon16/patches/{slide}.npz", slide=C16_SLIDE_PATHS
        ),
        slides=[path for path, _ in C16_SLIDE_PATHS.values()],
        reference=(
            f"{camelyon16_slides_root()}/testing/reference.csv"
            if C16_SLIDE_PATHS
            else []
        ),
    output:
        data="results/smmile/camelyon16/data/slides.npz",
        table="results/smmile/camelyon16/data/slides.tsv",
    log:
        "logs/smmile/camelyon16/dataset.log",
    conda:
        "../envs/mil.yaml"
    params:
        code=package_code("scripts/smmile/slides_dataset.py"),
        n_components=C16_SLIDES["n_components"],
        classes=C16_CLASSES,
        seed=derive_seed(config["seed"], "camelyon16-slides-pca"),
    script:
        "../scripts/smmile/slides_dataset.py"


# On a cluster, several fits share a submission (group spatial_fits; the profile's group-components).
rule fit_spatial:
    input:
        smmile_data,
    output:
        **saved_model(
            "smmile", "results/smmile/models/{study}/{model}/repeat{repeat}.pt"
        ),
        slides="results/smmile/{study}/{model}/repeat{repeat}/slides.tsv",
        patches="results/smmile/{study}/{model}/repeat{repeat}/patches.tsv",
        metrics="results/smmile/{study}/{model}/repeat{repeat}/metrics.tsv",
    log:
        "logs/smmile/{study}/{model}/repeat{repeat}.log",
    benchmark:
        "logs/benchmarks/smmile/{study}/{model}/repeat{repeat}.tsv"
    wildcard_constraints:
        study="simulation(_multiclass|_multilabel)?|camelyon16",
        model="|".join(SMMILE_MODELS) or "none",
    group:
        cluster_group("spatial_fits")
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(3000),
        runtime=runtime_minutes(60),
    params:
        code=package_code("scripts/smmile/fit.py"),
        spec=lambda wc: SMMILE_MODELS[wc.model],
        seed=lambda wc: derive_seed(
            config["seed"],
            "spatial-fit",
            wc.model,
            wc.repeat,
            *([wc.study] if wc.study != "simulation" else []),
        ),
        device=config["device"],
    script:
        "../scripts/smmile/fit.py"


rule spatial_summary:
    input:
        metrics=lambda wc: expand(
            "results/smmile/{study}/{model}/repeat{repeat}/metrics.tsv",
            study=wc.study,
            model=SMMILE_MODELS,
            repeat=SMMILE_REPEATS,
        ),
        patches=lambda wc: expand(
            "results/smmile/{study}/{model}/repeat0/patches.tsv",
            study=wc.study,
            model=SMMILE_MODELS,
        ),
    output:
        tsv="results/smmile/tables/spatial_{study}.tsv",
        md="results/smmile/tables/spatial_{study}.md",
        html=report(
            "results/smmile/tables/spatial_{study}.html",
            caption="../report/spatial_table.rst",
            category="SMMILe",
            subcategory="{study}",
        ),
        expectation="results/smmile/tables/spatial_{study}_expectation.md",
        expectation_html=report(
            "results/smmile/tables/spatial_{study}_expectation.html",
            caption="../report/spatial_expectation.rst",
            category="SMMILe",
            subcategory="{study}",
        ),
        maps=report(
            "results/smmile/figures/spatial_{study}.png",
            caption="../report/spatial_maps.rst",
            category="SMMILe",
            subcategory="{study}",
        ),
    log:
        "logs/smmile/summary_{study}.log",
    wildcard_constraints:
        study="simulation(_multiclass|_multilabel)?|camelyon16",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/smmile/summary.py"),
        models=list(SMMILE_MODELS),
        families={name: spec_type(spec).family for name, spec in SMMILE_MODELS.items()},
        provenance=config_provenance({"smmile": SMMILE}, config["seed"]),
    script:
        "../scripts/smmile/summary.py"
