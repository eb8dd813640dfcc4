# Simulation study (paper Section 4.2): simulate -> fit -> evaluate and aggregate -> figures.


# One job simulates every repeat of a scenario (each with its own seed): seconds per dataset; on a cluster
# the scenarios share submissions (group simulation_data; the profile's group-components).
rule simulate_data:
    output:
        expand("results/simulation/data/{{scenario}}/rep{repeat}.npz", repeat=REPEATS),
    log:
        "logs/simulation/simulate/{scenario}.log",
    group:
        cluster_group("simulation_data")
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/simulation/simulate.py"),
        simulation=lambda wc: SCENARIOS[wc.scenario],
        seeds=simulation_seeds,
    script:
        "../scripts/simulation/simulate.py"


# One job fits a model on every repeat of a scenario (each repeat with its own seed, as one job per repeat
# would): config/paper.yaml's 2,630 fits are 263 jobs, and on a cluster the small ones share submissions.
rule fit_simulation:
    input:
        expand("results/simulation/data/{{scenario}}/rep{repeat}.npz", repeat=REPEATS),
    output:
        **saved_model(
            "simulation",
            expand(
                "results/simulation/models/{{model}}/{{scenario}}/rep{repeat}.pt",
                repeat=REPEATS,
            ),
        ),
        predictions=expand(
            "results/simulation/predictions/{{model}}/{{scenario}}/rep{repeat}.npz",
            repeat=REPEATS,
        ),
    log:
        "logs/simulation/fit/{model}/{scenario}.log",
    benchmark:
        "logs/benchmarks/simulation/fit/{model}/{scenario}.tsv"
    # on a cluster, small fits go several to one submission (workflow/resources.py: fit_group)
    group:
        cluster_group(
            lambda wc: fit_group(
                config["models"][wc.model],
                simulation_fit_job_minutes(wc),
                model_gpus(config["models"][wc.model]),
                SCALING,
            )
        )
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(config["models"][wc.model])
    resources:
        gpu=lambda wc: model_gpus(config["models"][wc.model]),
        # from the recorded cost of the model and the scenario's size (workflow/resources.py), for every
        # repeat, more on a retry; memory for one repeat's data at a time
        mem_mb=lambda wc, input, attempt: job_memory_mb(
            input.size_mb / len(REPEATS), attempt, scaling=SCALING
        ),
        runtime=lambda wc, attempt: simulation_fit_job_minutes(wc, attempt),
    params:
        code=package_code("scripts/simulation/fit.py"),
        model=lambda wc: config["models"][wc.model],
        seeds=fit_seeds,
        device=config["device"],
    script:
        "../scripts/simulation/fit.py"


# Evaluation (test-set Spearman, instance-retrieval AUC) runs inside the aggregation: one job for all runs,
# since the metrics take milliseconds and a job per run cost seconds of Python start-up each.
rule aggregate_simulation:
    input:
        data=simulation_data_files,
        predictions=simulation_prediction_files,
    output:
        long="results/simulation/tables/simulation_metrics.tsv",
        summary="results/simulation/tables/simulation_summary.tsv",
        axes="results/simulation/tables/simulation_axes.tsv",
        default_md="results/simulation/tables/default_scenario.md",
        default_html=report(
            "results/simulation/tables/default_scenario.html",
            caption="../report/default_scenario.rst",
            category="Simulation",
        ),
        summary_md="results/simulation/tables/simulation_summary.md",
        paired="results/simulation/tables/simulation_paired.tsv",
        hyperparameters="results/simulation/tables/simulation_hyperparameters.tsv",
        paired_md="results/simulation/tables/simulation_paired.md",
        paired_html=report(
            "results/simulation/tables/simulation_paired.html",
            caption="../report/simulation_paired.rst",
            category="Simulation",
        ),
    log:
        "logs/simulation/aggregate.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/simulation/aggregate.py"),
        runs=SIMULATION_RUNS,
        run_data=simulation_run_data_files(),
        top_fraction=SIMULATION["top_fraction"],
        reference=SIMULATION_REFERENCE,
        provenance=table_provenance(SIMULATION_MODELS, simulation=SIMULATION),
        simulation=SIMULATION,
    script:
        "../scripts/simulation/aggregate.py"


rule simulation_figures:
    input:
        axes="results/simulation/tables/simulation_axes.tsv",
    output:
        spearman=report(
            "results/simulation/figures/fig2_spearman.png",
            caption="../report/fig2_spearman.rst",
            category="Simulation",
        ),
        spearman_svg="results/simulation/figures/fig2_spearman.svg",
        auc=report(
            "results/simulation/figures/fig2_instance_auc.png",
            caption="../report/fig2_instance_auc.rst",
            category="Simulation",
        ),
        auc_svg="results/simulation/figures/fig2_instance_auc.svg",
        mean_field=report(
            "results/simulation/figures/figE2_retrieval_mean_field.png",
            caption="../report/figE2.rst",
            category="Simulation",
        ),
        mean_field_svg="results/simulation/figures/figE2_retrieval_mean_field.svg",
        traditional=report(
            "results/simulation/figures/figE1_traditional.png",
            caption="../report/figE1_traditional.rst",
            category="Simulation",
        ),
        traditional_svg="results/simulation/figures/figE1_traditional.svg",
    log:
        "logs/simulation/figures.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/simulation/figures.py"),
        models=SIMULATION_MODELS,
        model_specs={m: config["models"][m] for m in SIMULATION_MODELS},
        defaults=SCENARIOS["default"],
    script:
        "../scripts/simulation/figures.py"
