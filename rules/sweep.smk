# Optional hyperparameter sweep of the MIL baselines (paper Appendix C.1, Tables C.1/C.2):
# every grid combination on sweep datasets simulated from the default scenario with their own seeds,
# scored on held-out validation bags; the best mean validation Spearman is selected.


rule simulate_sweep_data:
    output:
        "results/sweep/data/{scenario}/rep{repeat}.npz",
    log:
        "logs/sweep/simulate/{scenario}/rep{repeat}.log",
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/simulation/simulate.py"),
        simulation=lambda wc: SCENARIOS[wc.scenario],
        seeds=lambda wc: [sweep_data_seed(wc)],  # the script simulates one dataset per output
    script:
        "../scripts/simulation/simulate.py"


rule fit_sweep:
    input:
        "results/sweep/data/default/rep{repeat}.npz",
    output:
        # lists of one: the simulation's fit script takes one dataset, seed, model and predictions per entry
        **saved_model("sweep", ["results/sweep/models/{model}/c{combo}/rep{repeat}.pt"]),
        predictions=["results/sweep/predictions/{model}/c{combo}/rep{repeat}.npz"],
    log:
        "logs/sweep/fit/{model}/c{combo}/rep{repeat}.log",
    benchmark:
        "logs/benchmarks/sweep/fit/{model}/c{combo}/rep{repeat}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(SWEEP_COMBINATIONS[wc.model][int(wc.combo)])
    resources:
        gpu=lambda wc: model_gpus(SWEEP_COMBINATIONS[wc.model][int(wc.combo)]),
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/simulation/fit.py"),
        model=lambda wc: SWEEP_COMBINATIONS[wc.model][int(wc.combo)],
        seeds=lambda wc: [sweep_fit_seed(wc)],
        device=config["device"],
    script:
        "../scripts/simulation/fit.py"


# Each fit is scored on its validation bags inside the selection job (one job, not one per fit).
rule select_sweep:
    input:
        data=sweep_data_files,
        predictions=sweep_prediction_files,
    output:
        metrics="results/sweep/tables/sweep_metrics.tsv",
        grid="results/sweep/tables/sweep_grid.tsv",
        grid_md="results/sweep/tables/sweep_grid.md",
        grid_html=report(
            "results/sweep/tables/sweep_grid.html",
            caption="../report/sweep.rst",
            category="Hyperparameter sweep",
        ),
        selected="results/sweep/tables/sweep_selected.tsv",
        selected_md="results/sweep/tables/sweep_selected.md",
        selected_yaml="results/sweep/selected_models.yaml",
    log:
        "logs/sweep/select.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/sweep/select.py"),
        runs=SWEEP_RUNS,
        run_data=sweep_run_data_files(),
        top_fraction=SIMULATION["top_fraction"],
        provenance=table_provenance(
            list(SWEEP_COMBINATIONS), sweep=SWEEP, simulation=SIMULATION
        ),
        combinations=SWEEP_COMBINATIONS,
    script:
        "../scripts/sweep/select.py"
