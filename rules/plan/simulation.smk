# The plan of the simulation branch (rules/simulation.smk): its settings, runs, seeds, targets and input functions.


REPEATS = list(range(SIMULATION["n_repeats"]))
# The models of an active study (an inactive one's list, maybe the schema's default, is never read).
SIMULATION_MODELS = SIMULATION["models"] if SIMULATION["activate"] else []
SIMULATION_RUNS = model_runs(SIMULATION, config["models"], SCENARIOS)
SIMULATION_REFERENCE = reference_model(SIMULATION, config["models"])


def simulation_seeds(wildcards):
    """One seed per repeat of the scenario, from its identity (scenario, repeat)."""
    return [
        derive_seed(config["seed"], "simulate", wildcards.scenario, str(r))
        for r in REPEATS
    ]


def fit_seeds(wildcards):
    """One seed per repeat, from the fit's identity (model, scenario, repeat): the job's grouping of
    repeats does not change any fit."""
    return [
        derive_seed(config["seed"], "fit", wildcards.model, wildcards.scenario, str(r))
        for r in REPEATS
    ]


def simulation_prediction_files(wildcards=None):
    return [
        f"results/simulation/predictions/{model}/{scenario}/rep{repeat}.npz"
        for model, scenario, repeat in SIMULATION_RUNS
    ]


def simulation_run_data_files():
    """The dataset of every run, in the order of SIMULATION_RUNS (so repeated per model)."""
    return [
        f"results/simulation/data/{scenario}/rep{repeat}.npz"
        for _, scenario, repeat in SIMULATION_RUNS
    ]


def simulation_data_files(wildcards=None):
    """Every simulated dataset a run uses, each once."""
    return sorted(set(simulation_run_data_files()))


def simulation_outputs():
    if not SIMULATION["activate"]:
        return []
    return [
        "results/simulation/tables/simulation_metrics.tsv",
        "results/simulation/tables/simulation_summary.tsv",
        "results/simulation/tables/simulation_axes.tsv",
        "results/simulation/tables/default_scenario.md",
        "results/simulation/figures/fig2_spearman.png",
        "results/simulation/figures/fig2_instance_auc.png",
        "results/simulation/figures/figE2_retrieval_mean_field.png",
        "results/simulation/figures/figE1_traditional.png",
    ]


def simulation_fit_job_minutes(wc, attempt=1):
    """The runtime a fit_simulation job asks for: the cost model of workflow/resources.py."""
    spec = config["models"][wc.model]
    return simulation_fit_runtime(
        spec,
        SCENARIOS[wc.scenario],
        SCENARIOS[DEFAULT_SCENARIO],
        SIMULATION["n_outputs"],
        model_threads(spec),
        attempt,
        n_fits=len(REPEATS),
        scaling=SCALING,
    )
