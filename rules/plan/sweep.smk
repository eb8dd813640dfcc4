# The plan of the sweep branch (rules/sweep.smk): its settings, runs, seeds, targets and input functions.


SWEEP = config["sweep"]
SWEEP_COMBINATIONS = sweep_combinations(SWEEP, config["models"])
SWEEP_RUNS = sweep_runs(SWEEP_COMBINATIONS, SWEEP["n_repeats"])


def sweep_data_seed(wildcards):
    # Own seeds: the sweep's validation sets are never the study's test sets.
    return derive_seed(config["seed"], "sweep", wildcards.scenario, wildcards.repeat)


def sweep_fit_seed(wildcards):
    return derive_seed(
        config["seed"], "sweep-fit", wildcards.model, wildcards.combo, wildcards.repeat
    )


def sweep_prediction_files(wildcards=None):
    return [
        f"results/sweep/predictions/{model}/c{combo}/rep{repeat}.npz"
        for model, combo, repeat in SWEEP_RUNS
    ]


def sweep_run_data_files():
    """The sweep dataset of every fit, in the order of SWEEP_RUNS (so repeated per combination)."""
    return [
        f"results/sweep/data/default/rep{repeat}.npz" for _, _, repeat in SWEEP_RUNS
    ]


def sweep_data_files(wildcards=None):
    """Every sweep dataset a fit uses, each once."""
    return sorted(set(sweep_run_data_files()))


def sweep_outputs():
    if not SWEEP["activate"] or not SWEEP_RUNS:
        return []
    return [
        "results/sweep/tables/sweep_grid.md",
        "results/sweep/tables/sweep_selected.md",
        "results/sweep/selected_models.yaml",
    ]
