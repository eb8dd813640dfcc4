# The plan of the camelyon16 branch (rules/camelyon16.smk): its settings, runs, seeds, targets and input functions.


CAMELYON16 = config["camelyon16"]
CAMELYON16_MODELS = camelyon16_models(CAMELYON16, config["models"])
CAMELYON16_SEEDS = list(range(CAMELYON16["n_seeds"]))


CAMELYON16_SWEEP = CAMELYON16["sweep"]
CAMELYON16_SWEEP_COMBINATIONS = (
    sweep_combinations(CAMELYON16_SWEEP, config["models"])
    if CAMELYON16_MODELS and CAMELYON16_SWEEP["activate"]
    else {}
)
CAMELYON16_SWEEP_RUNS = [
    (model, combo) for model, combo, _ in sweep_runs(CAMELYON16_SWEEP_COMBINATIONS, 1)
]


def camelyon16_fit_seed(wildcards):
    return derive_seed(
        config["seed"], "camelyon16-fit", wildcards.model, wildcards.seed
    )


def camelyon16_source():
    """The archive's row of the source sheet (url, sha256, size) as a dict: a rule parameter, so
    a changed URL or checksum reruns the download."""
    sources = read_source_sheet(Path(workflow.basedir) / CAMELYON16["sheet"])
    if "camelyon16_features" not in sources:
        raise ValueError(
            f"{CAMELYON16['sheet']}: no row for source 'camelyon16_features'"
        )
    return vars(sources["camelyon16_features"])


def camelyon16_archive():
    if CAMELYON16["source"] == "demo":
        return "resources/camelyon16/demo/camelyon16_features.zip"
    return "resources/camelyon16/camelyon16_features.zip"


def camelyon16_truth(wildcards=None):
    # Patch-level truth exists only for the generated demo archive.
    if CAMELYON16["source"] == "demo":
        return {"truth": "resources/camelyon16/demo/patch_truth.tsv.gz"}
    return {}


def camelyon16_runs():
    return [(model, seed) for model in CAMELYON16_MODELS for seed in CAMELYON16_SEEDS]


def camelyon16_prediction_files(wildcards=None):
    return [
        f"results/camelyon16/predictions/{model}/seed{seed}.tsv"
        for model, seed in camelyon16_runs()
    ]


def camelyon16_instance_files(wildcards=None):
    return [
        f"results/camelyon16/instance_scores/{model}/seed{seed}.npz"
        for model, seed in camelyon16_runs()
    ]


def camelyon16_sweep_files(wildcards=None):
    return [
        f"results/camelyon16/sweep/predictions/{model}/c{combo}.tsv"
        for model, combo in CAMELYON16_SWEEP_RUNS
    ]


def camelyon16_sweep_seed(wildcards):
    return derive_seed(
        config["seed"], "camelyon16-sweep", wildcards.model, wildcards.combo
    )


def camelyon16_outputs():
    if not CAMELYON16_MODELS:
        return []
    sweep = (
        [
            "results/camelyon16/sweep/sweep_grid.md",
            "results/camelyon16/sweep/selected_models.yaml",
        ]
        if CAMELYON16_SWEEP_RUNS
        else []
    )
    return sweep + [
        "results/camelyon16/tables/table3_auc.tsv",
        "results/camelyon16/tables/table3_auc.md",
        "results/camelyon16/figures/roc.png",
        "results/camelyon16/figures/instance_scores.png",
    ]
