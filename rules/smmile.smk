# SMMILe (issue 7, Gao et al. 2024) on the spatial slide simulation: slide-level AUC and patch-level
# localisation against the known tumour mask, next to the attention maps of ABMIL, DSMIL and MixMIL.


rule spatial_simulation:
    output:
        "results/smmile/simulation/data/repeat{repeat}.npz",
    log:
        "logs/smmile/simulation/data_repeat{repeat}.log",
    conda:
        "../envs/mil.yaml"
    params:
        simulation=SMMILE.get("simulation", {}),
        seed=lambda wc: derive_seed(config["seed"], "spatial-simulation", wc.repeat),
    script:
        "../scripts/smmile/simulate.py"


rule fit_spatial:
    input:
        "results/smmile/simulation/data/repeat{repeat}.npz",
    output:
        slides="results/smmile/simulation/{model}/repeat{repeat}/slides.tsv",
        patches="results/smmile/simulation/{model}/repeat{repeat}/patches.tsv",
        metrics="results/smmile/simulation/{model}/repeat{repeat}/metrics.tsv",
    log:
        "logs/smmile/simulation/{model}/repeat{repeat}.log",
    benchmark:
        "benchmarks/rules/smmile/simulation/{model}/repeat{repeat}.tsv"
    wildcard_constraints:
        model="|".join(SMMILE_MODELS) or "none",
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=3000,
        runtime=60,
    params:
        spec=lambda wc: SMMILE_MODELS[wc.model],
        seed=lambda wc: derive_seed(config["seed"], "spatial-fit", wc.model, wc.repeat),
        device=config["device"],
    script:
        "../scripts/smmile/fit.py"


rule spatial_summary:
    input:
        metrics=expand(
            "results/smmile/simulation/{model}/repeat{repeat}/metrics.tsv",
            model=SMMILE_MODELS,
            repeat=SMMILE_REPEATS,
        ),
        patches=expand(
            "results/smmile/simulation/{model}/repeat0/patches.tsv",
            model=SMMILE_MODELS,
        ),
    output:
        tsv="results/smmile/tables/spatial_simulation.tsv",
        md=report(
            "results/smmile/tables/spatial_simulation.md",
            caption="../report/spatial_simulation.rst",
            category="SMMILe",
        ),
        maps=report(
            "results/smmile/figures/spatial_maps.png",
            caption="../report/spatial_maps.rst",
            category="SMMILe",
        ),
    log:
        "logs/smmile/summary.log",
    conda:
        "../envs/report.yaml"
    params:
        models=list(SMMILE_MODELS),
        provenance=config_provenance({"smmile": SMMILE}, config["seed"]),
    script:
        "../scripts/smmile/summary.py"
