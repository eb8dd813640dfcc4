# MoMIL (issue 7, Pati et al. 2025) on the sparse multi-task simulation: single-task MIL against MoMIL,
# its task-selection (optional biological similarity table) and label-imputation ablations, and MixMIL's
# multi-output model with missing labels masked; mean test ROC-AUC over the primary tasks.


rule momil_simulation:
    input:
        similarity=momil_similarity_table(),
    output:
        **saved_model("momil", directory("results/momil/models/repeat{repeat}")),
        results="results/momil/simulation/repeat{repeat}.tsv",
        selection="results/momil/simulation/selection_repeat{repeat}.tsv",
    log:
        "logs/momil/simulation/repeat{repeat}.log",
    benchmark:
        "logs/benchmarks/momil/simulation/repeat{repeat}.tsv"
    group:
        cluster_group("momil_fits")
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(3000),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/momil/simulation.py"),
        simulation=MOMIL["simulation"],
        model=MOMIL["model"],
        mixmil=MOMIL["mixmil"],
        variants=MOMIL.get("variants"),
        selection={
            k: v for k, v in MOMIL["selection"].items() if k != "similarity_table"
        },
        imputation=MOMIL["imputation"],
        seed=lambda wc: derive_seed(config["seed"], "momil-simulation", wc.repeat),
        device=config["device"],
    script:
        "../scripts/momil/simulation.py"


rule momil_summary:
    input:
        expand("results/momil/simulation/repeat{repeat}.tsv", repeat=MOMIL_REPEATS),
    output:
        tsv="results/momil/tables/momil_simulation.tsv",
        md="results/momil/tables/momil_simulation.md",
        html=report(
            "results/momil/tables/momil_simulation.html",
            caption="../report/momil_simulation.rst",
            category="MoMIL",
        ),
    log:
        "logs/momil/summary.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/momil/summary.py"),
        provenance=config_provenance({"momil": MOMIL}, config["seed"]),
    script:
        "../scripts/momil/summary.py"
