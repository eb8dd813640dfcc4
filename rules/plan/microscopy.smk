# The plan of the microscopy branch (rules/microscopy.smk): its settings, runs, seeds, targets and input functions.


from mixmil_workflow.microscopy.demo import DemoSpec

MICROSCOPY = config["microscopy"]
MICROSCOPY_MODELS = microscopy_models(MICROSCOPY, config["models"])
MICROSCOPY_PLATES = (
    list(MICROSCOPY["plates"])
    if MICROSCOPY["source"] == "download"
    else list(
        MICROSCOPY["demo"].get("plates") or DemoSpec().plates
    )  # the demo generator's default
)
MICROSCOPY_REPEATS = list(range(MICROSCOPY["n_repeats"]))
MICROSCOPY_PCS = sorted(MICROSCOPY["pca_components"])
MICROSCOPY_METADATA = {
    "image": "BBBC021_v1_image.csv",
    "moa": "BBBC021_v1_moa.csv",
    "compound": "BBBC021_v1_compound.csv",
    "nuclei": "ljosa_jbiomolscreen_2013.sqlite",
}
# The downloaded BBBC021 files (flat under resources/bbbc021/download/) and their source-sheet rows.
BBBC021_DOWNLOADS = {
    "BBBC021_v1_image.csv": "bbbc021_image_csv",
    "BBBC021_v1_moa.csv": "bbbc021_moa_csv",
    "BBBC021_v1_compound.csv": "bbbc021_compound_csv",
    "ljosa_jbiomolscreen_2013.sqlite": "bbbc021_nuclei",
    "simclr_resnet50.pth": "bbbc021_simclr",
    **{f"BBBC021_v1_images_{p}.zip": f"bbbc021_plate_{p}" for p in MICROSCOPY_PLATES},
}
if MICROSCOPY_MODELS and not MICROSCOPY_PLATES:
    raise ValueError(
        "config: microscopy.plates is empty; list the BBBC021 plates to download (Week1_22123, ...)"
    )


MICROSCOPY_SWEEP = MICROSCOPY["sweep"]
MICROSCOPY_SWEEP_COMBINATIONS = (
    sweep_combinations(MICROSCOPY_SWEEP, config["models"])
    if MICROSCOPY_MODELS and MICROSCOPY_SWEEP["activate"]
    else {}
)
MICROSCOPY_SWEEP_RUNS = [
    (model, combo, repeat)
    for model, combo, _ in sweep_runs(MICROSCOPY_SWEEP_COMBINATIONS, 1)
    for repeat in MICROSCOPY_REPEATS
]


def microscopy_sweep_files(wildcards=None):
    return [
        f"results/microscopy/sweep/predictions/{m}/c{c}/repeat{r}.tsv"
        for m, c, r in MICROSCOPY_SWEEP_RUNS
    ]


def bbbc021_root():
    return (
        "resources/bbbc021/download"
        if MICROSCOPY["source"] == "download"
        else "resources/bbbc021/demo"
    )


def bbbc021_input(kind):
    """A raw BBBC021 metadata file (image, moa, compound, nuclei) of the configured source."""
    return f"{bbbc021_root()}/{MICROSCOPY_METADATA[kind]}"


def bbbc021_plate_zip(wildcards):
    return f"{bbbc021_root()}/BBBC021_v1_images_{wildcards.plate}.zip"


def microscopy_checkpoint():
    """The SimCLR checkpoint as a list of inputs: none (random init), the download, or a user path."""
    # (not named "checkpoint": a Snakemake keyword)
    weights = MICROSCOPY.get("checkpoint")
    if weights is None:
        return []
    if weights == "download":
        return ["resources/bbbc021/download/simclr_resnet50.pth"]
    return [weights]


def bbbc021_download_source(wildcards):
    """The source-sheet row of one BBBC021 file; as a parameter, a changed URL or checksum reruns it."""
    sheet = MICROSCOPY["sheet"]
    sources = read_source_sheet(Path(workflow.basedir) / sheet)
    row = BBBC021_DOWNLOADS.get(wildcards.file)
    if row is None or row not in sources:
        raise ValueError(
            f"{sheet}: no row for source {row or wildcards.file!r} (needed for "
            f"resources/bbbc021/download/{wildcards.file}); add it with its url and, where known, sha256"
        )
    return vars(sources[row])


def microscopy_runs():
    return [
        (model, pcs, repeat)
        for model in MICROSCOPY_MODELS
        for pcs in MICROSCOPY_PCS
        for repeat in MICROSCOPY_REPEATS
    ]


def microscopy_prediction_files(wildcards=None):
    return [
        f"results/microscopy/predictions/{m}/pcs{k}/repeat{r}.tsv"
        for m, k, r in microscopy_runs()
    ]


def microscopy_weight_files(wildcards=None):
    main = MICROSCOPY["main_components"]
    return [
        f"results/microscopy/instance_weights/{m}/pcs{main}/repeat{r}.npz"
        for m in MICROSCOPY_MODELS
        for r in MICROSCOPY_REPEATS
    ]


def compound_slug(compound):
    return re.sub(r"[^A-Za-z0-9]+", "_", compound).strip("_")


def montage_compound(wildcards):
    """The configured compound whose file-name slug is ``wildcards.compound``."""
    for compound in MICROSCOPY["montage"]["compounds"]:
        if compound_slug(compound) == wildcards.compound:
            return compound
    raise ValueError(
        f"no compound of microscopy.montage.compounds has the slug {wildcards.compound!r}"
    )


def microscopy_outputs():
    if not MICROSCOPY_MODELS:
        return []
    out = [
        "results/microscopy/tables/table2.md",
        "results/microscopy/tables/table_e3_f1_per_moa.md",
        "results/microscopy/tables/table_e4_components.md",
    ] + [
        f"results/microscopy/figures/fig_e4_{compound_slug(c)}.png"
        for c in MICROSCOPY["montage"]["compounds"]
    ]
    if MICROSCOPY["source"] == "demo":
        out.append("results/microscopy/tables/demo_cell_kinds.md")
    if MICROSCOPY_SWEEP_RUNS:
        out += [
            "results/microscopy/sweep/sweep_grid.md",
            "results/microscopy/sweep/selected_models.yaml",
        ]
    return out
