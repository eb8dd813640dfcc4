# Table 1 analogue: training-step and prediction times and parameter counts of the MIL models.
# All models are measured in one job on the same data so that their ratios are comparable.


rule model_costs:
    input:
        "results/simulation/data/default/rep0.npz",
    output:
        tsv="results/costs/table1_costs.tsv",
        md="results/costs/table1_costs.md",
        html=report(
            "results/costs/table1_costs.html",
            caption="../report/table1_costs.rst",
            category="Model costs",
        ),
    log:
        "logs/costs/model_costs.log",
    benchmark:
        "logs/benchmarks/costs/model_costs.tsv"
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(60),
    params:
        code=package_code("scripts/costs/measure.py"),
        costs=COSTS,
        provenance=table_provenance(COST_MODELS, costs=COSTS, simulation=SIMULATION),
        models=lambda wc: {m: config["models"][m] for m in COST_MODELS},
        seed=derive_seed(config["seed"], "costs"),
        device=config["device"],
    script:
        "../scripts/costs/measure.py"
