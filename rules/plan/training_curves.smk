# The plan of the training-curve figures (rules/training_curves.smk): per study, the fit files that hold
# the loss histories and the model each file belongs to (simulation: the default scenario's first repeat).


def _training_curve_inputs():
    studies = {}
    default_runs = [
        m
        for m, scenario, repeat in SIMULATION_RUNS
        if scenario == DEFAULT_SCENARIO and repeat == 0
    ]
    if default_runs:
        studies["simulation"] = {
            f"results/simulation/predictions/{m}/{DEFAULT_SCENARIO}/rep0.npz": m
            for m in default_runs
        }
    if CAMELYON16_MODELS:
        studies["camelyon16"] = {
            f"results/camelyon16/instance_scores/{m}/seed{s}.npz": m
            for m in CAMELYON16_MODELS
            for s in CAMELYON16_SEEDS
        }
    if MICROSCOPY_MODELS:
        main = MICROSCOPY["main_components"]
        studies["microscopy"] = {
            f"results/microscopy/instance_weights/{m}/pcs{main}/repeat{k}.npz": m
            for m in MICROSCOPY_MODELS
            for k in MICROSCOPY_REPEATS
        }
    if GENETICS["activate"] and GENETICS_MODELS:
        studies["genetics"] = {
            f"results/genetics/training/weights/{m}/fold{k}.npz": m
            for m in GENETICS_MODELS
            for k in GENETICS_FOLDS
        }
    return studies


TRAINING_CURVES = _training_curve_inputs()
# your datasets: name -> {fit file: "model (label)"}
DATASET_TRAINING_CURVES = {
    name: {
        f"results/datasets/{name}/instance_weights/{label}/{m}/{unit}.npz": f"{m} ({label})"
        for label, m, unit in runs
    }
    for name, runs in DATASET_RUNS.items()
}


def training_curve_outputs():
    return [
        f"results/{study}/figures/training_curves.png" for study in TRAINING_CURVES
    ] + [
        f"results/datasets/{name}/figures/training_curves.png"
        for name in DATASET_TRAINING_CURVES
    ]
