import os
import re
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The science lives in the package under src/; make it importable here and in every job's script,
# whether it runs in the pip environment or in a conda env from envs/.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# (This sets a variable for the jobs; it reads none that the user must provide, so no envvars: entry.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
)

from mixmil_workflow.camelyon16.study import camelyon16_models  # noqa: E402
from mixmil_workflow.own_bags.study import check_models, protocol_folds  # noqa: E402
from mixmil_workflow.own_bags.input import LabelSpec  # noqa: E402
from mixmil_workflow.download import read_source_sheet  # noqa: E402
from mixmil_workflow.genetics.demo import (
    LYMPHOID_ESNP_CODES,
    OTHER_ESNP_CODES,
)  # noqa: E402
from mixmil_workflow.genetics.training import (
    genetics_covariates,
    genetics_models,
)  # noqa: E402
from mixmil_workflow.models.registry import (  # noqa: E402
    gpus as model_gpus,
    spec_type,
    threads as model_threads,
)
from mixmil_workflow.microscopy.study import microscopy_models  # noqa: E402
from mixmil_workflow.workflow.provenance import config_provenance  # noqa: E402
from mixmil_workflow.studies.sweep import sweep_combinations, sweep_runs  # noqa: E402
from mixmil_workflow.studies.simulation import (  # noqa: E402
    cost_models,
    derive_seed,
    model_runs,
    reference_model,
    scenario_grid,
)

from mixmil_workflow.workflow.code import code_digest  # noqa: E402

validate(config, schema="../config/config.schema.yaml")


def package_code(script):
    """Digest of the package modules that a rule's script imports: a parameter, so that editing one of
    them reruns exactly the rules that run it (Snakemake itself tracks only the script file).
    """
    return code_digest(Path(workflow.basedir) / script, SRC)


SIMULATION = config["simulation"]
SCENARIOS = scenario_grid(SIMULATION)
REPEATS = list(range(SIMULATION["n_repeats"]))
SIMULATION_RUNS = model_runs(SIMULATION, config["models"], SCENARIOS)
SIMULATION_REFERENCE = reference_model(SIMULATION, config["models"])
COSTS = config.get("costs", {})
COST_MODELS = cost_models(COSTS, config["models"], SIMULATION["models"])
SWEEP = config.get("sweep", {})
SWEEP_COMBINATIONS = sweep_combinations(SWEEP, config["models"])
SWEEP_RUNS = sweep_runs(SWEEP_COMBINATIONS, SWEEP.get("n_repeats", 10))
CAMELYON16 = config.get("camelyon16", {})
CAMELYON16_MODELS = camelyon16_models(CAMELYON16, config["models"])
CAMELYON16_SEEDS = list(range(CAMELYON16.get("n_seeds", 5)))
DATASETS = config.get("datasets", {})
DATASET_LABELS = {
    name: {col: LabelSpec.parse(col, spec) for col, spec in ds["labels"].items()}
    for name, ds in DATASETS.items()
}
for _name, _ds in DATASETS.items():
    check_models(_name, DATASET_LABELS[_name], _ds["models"], config["models"])
DATASET_RUNS = {
    name: [
        (label, model, fold)
        for label in ds["labels"]
        for model in ds["models"]
        for fold in protocol_folds(ds.get("protocol", {"kind": "kfold"}))
    ]
    for name, ds in DATASETS.items()
}
CAMELYON16_SWEEP = CAMELYON16.get("sweep", {})
CAMELYON16_SWEEP_COMBINATIONS = (
    sweep_combinations(CAMELYON16_SWEEP, config["models"])
    if CAMELYON16_MODELS and CAMELYON16_SWEEP.get("activate", False)
    else {}
)
CAMELYON16_SWEEP_RUNS = [
    (model, combo) for model, combo, _ in sweep_runs(CAMELYON16_SWEEP_COMBINATIONS, 1)
]


wildcard_constraints:
    scenario="|".join(map(lambda s: s.replace(".", r"\."), SCENARIOS)),
    model="|".join(config["models"]),
    repeat=r"\d+",
    combo=r"\d+",
    seed=r"\d+",
    fold=r"\d+",
    dataset="|".join(config.get("datasets", {})) or "no-datasets",
    plate=r"Week\d+_\d+",
    compound=r"[A-Za-z0-9_]+",


def table_provenance(models, **sections):
    """A result table's provenance parameter: digest of exactly the config sections (and models) it
    depends on plus the root seed, so that editing another branch's settings does not rerun it.
    """
    sections["models"] = {m: config["models"][m] for m in models}
    return config_provenance(sections, config["seed"])


def dataset_provenance(wildcards):
    ds = DATASETS[wildcards.dataset]
    return table_provenance(ds["models"], datasets={wildcards.dataset: ds})


GENETICS = config.get("genetics", {})
ONEK1K_ESNP_CODES = [*LYMPHOID_ESNP_CODES, *OTHER_ESNP_CODES]


# The downloaded OneK1K files (flat under resources/onek1k/download/) and their rows in the source sheet.
ONEK1K_DOWNLOADS = {
    "onek1k.h5ad": "onek1k_h5ad",
    "OneK1K.noGP.vcf.gz": "onek1k_vcf",
    "OneK1K.noGP.vcf.gz.csi": "onek1k_vcf_csi",
    **{
        f"{code}_esnp_table.tsv.gz": f"onek1k_esnp_{code}"
        for code in LYMPHOID_ESNP_CODES
    },
}


def onek1k_root():
    return (
        "resources/onek1k/download"
        if GENETICS.get("source", "demo") == "download"
        else "resources/onek1k/demo"
    )


def onek1k_input(kind):
    """The raw OneK1K file of this kind (h5ad, vcf, csi) for the configured source."""
    name = {
        "h5ad": "onek1k.h5ad",
        "vcf": "OneK1K.noGP.vcf.gz",
        "csi": "OneK1K.noGP.vcf.gz.csi",
    }[kind]
    return f"{onek1k_root()}/{name}"


def onek1k_vcf_index():
    """The downloaded VCF's index (fetched and checked with the VCF; the demo has none)."""
    return [onek1k_input("csi")] if GENETICS.get("source") == "download" else []


def onek1k_esnp_tables(wildcards=None):
    # downloads are flat (one wildcard level); the demo keeps the bucket's esnp/ folder
    folder = "" if GENETICS.get("source") == "download" else "esnp/"
    return [
        f"{onek1k_root()}/{folder}{code}_esnp_table.tsv.gz"
        for code in GENETICS.get("esnp_cell_types", [])
    ]


def onek1k_download_source(wildcards):
    """The source-sheet row of one OneK1K file; as a parameter of the download, a changed URL or
    checksum reruns it."""
    sheet = GENETICS.get("sheet", "config/sources.tsv")
    sources = read_source_sheet(Path(workflow.basedir) / sheet)
    row = ONEK1K_DOWNLOADS[wildcards.file]
    if row not in sources:
        raise ValueError(
            f"{sheet}: no row for source {row!r} (needed for resources/onek1k/download/{wildcards.file}); "
            "add it with its url and, where published, sha256"
        )
    return vars(sources[row])


# The genetics settings each stage depends on, so that a provenance digest (and a rerun) follows only
# the settings upstream of a table: editing cell_states must not rerun the variant universe.
GENETICS_STAGE_KEYS = {
    "universe": ["source", "demo", "esnp_cell_types", "max_fdr"],
    "screen": ["n_top_genes", "scvi", "n_genetic_pcs", "screen"],
    "labels": ["clump"],
}


def genetics_settings(stage):
    """The genetics config of ``stage`` and every stage before it (universe, screen, labels), or all."""
    if stage == "all":
        return GENETICS
    keys = []
    for name, stage_keys in GENETICS_STAGE_KEYS.items():
        keys += stage_keys
        if name == stage:
            break
    return {k: GENETICS[k] for k in keys if k in GENETICS}


GENETICS_SCREEN_CHUNKS = GENETICS.get("screen", {}).get("n_chunks", 1)
GENETICS_MODELS, GENETICS_REFERENCE = genetics_models(GENETICS, config["models"])
GENETICS_FOLDS = list(range(GENETICS.get("training", {}).get("n_folds", 5)))
GENETICS_COVARIATES = genetics_covariates(GENETICS.get("n_genetic_pcs", 4))
# Table 1 at OneK1K scale: the minibatch-trained MIL models among the genetics models.
GENETICS_COST_MODELS = [
    m for m in GENETICS_MODELS if spec_type(config["models"][m]).minibatch
]


def genetics_fit_files(kind):
    """Every model x fold output of fit_genetics (kind: predictions or weights)."""
    suffix = "tsv" if kind == "predictions" else "npz"
    return expand(
        f"results/genetics/training/{kind}/{{model}}/fold{{fold}}.{suffix}",
        model=GENETICS_MODELS,
        fold=GENETICS_FOLDS,
    )


def genetics_reference_weights(wildcards=None):
    return expand(
        "results/genetics/training/weights/{model}/fold{fold}.npz",
        model=GENETICS_REFERENCE,
        fold=GENETICS_FOLDS,
    )


def genetics_outputs():
    if not GENETICS.get("activate", False):
        return []
    out = [
        "results/genetics/cells/lymphoid_scvi.h5ad",
        "results/genetics/genotypes/genetic_pcs.tsv",
        "results/genetics/variants/universe.tsv",
        "results/genetics/variants/universe_counts.md",
        "results/genetics/labels/labels.md",
        "results/genetics/labels/label_dosages.tsv",
    ]
    if not GENETICS_MODELS:
        return out
    out += [
        "results/genetics/tables/spearman.tsv",
        "results/genetics/tables/table_e2.md",
        "results/genetics/figures/fig3_wins.png",
        "results/genetics/figures/fig_e3_cell_states.png",
        "results/genetics/tables/fig_e3_odds_ratios.md",
    ]
    if GENETICS_COST_MODELS:
        out.append("results/genetics/tables/table1_costs.md")
    if GENETICS.get("source", "demo") == "demo":
        out.append("results/genetics/tables/planted_recovery.md")
    return out


def simulation_seed(wildcards):
    return derive_seed(config["seed"], "simulate", wildcards.scenario, wildcards.repeat)


def fit_seed(wildcards):
    return derive_seed(
        config["seed"], "fit", wildcards.model, wildcards.scenario, wildcards.repeat
    )


def sweep_data_seed(wildcards):
    # Own seeds: the sweep's validation sets are never the study's test sets.
    return derive_seed(config["seed"], "sweep", wildcards.scenario, wildcards.repeat)


def sweep_fit_seed(wildcards):
    return derive_seed(
        config["seed"], "sweep-fit", wildcards.model, wildcards.combo, wildcards.repeat
    )


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


def cost_outputs():
    if not COST_MODELS:
        return []
    return ["results/costs/table1_costs.tsv", "results/costs/table1_costs.md"]


def sweep_outputs():
    if not SWEEP.get("activate", False) or not SWEEP_RUNS:
        return []
    return [
        "results/sweep/tables/sweep_grid.md",
        "results/sweep/tables/sweep_selected.md",
        "results/sweep/selected_models.yaml",
    ]


def dataset_prediction_files(wildcards):
    return [
        f"results/datasets/{wildcards.dataset}/predictions/{label}/{model}/fold{fold}.tsv"
        for label, model, fold in DATASET_RUNS[wildcards.dataset]
    ]


def dataset_weight_files(wildcards):
    return [
        f"results/datasets/{wildcards.dataset}/instance_weights/{label}/{model}/fold{fold}.npz"
        for label, model, fold in DATASET_RUNS[wildcards.dataset]
    ]


def dataset_fit_seed(wildcards):
    return derive_seed(
        config["seed"],
        "dataset-fit",
        wildcards.dataset,
        wildcards.label,
        wildcards.model,
        wildcards.fold,
    )


def dataset_outputs():
    return [f"results/datasets/{name}/{name}_comparison.md" for name in DATASETS] + [
        f"results/datasets/{name}/instance_weights.tsv.gz" for name in DATASETS
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


MICROSCOPY = config.get("microscopy", {})
MICROSCOPY_MODELS = microscopy_models(MICROSCOPY, config["models"])
MICROSCOPY_PLATES = (
    list(MICROSCOPY.get("plates", []))
    if MICROSCOPY.get("source", "demo") == "download"
    else list(
        MICROSCOPY.get("demo", {}).get(
            "plates", ["Week1_22123", "Week1_22141", "Week1_22161"]
        )
    )
)
MICROSCOPY_REPEATS = list(range(MICROSCOPY.get("n_repeats", 3)))
MICROSCOPY_PCS = sorted(MICROSCOPY.get("pca_components", [64, 256, 512]))
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


MICROSCOPY_SWEEP = MICROSCOPY.get("sweep", {})
MICROSCOPY_SWEEP_COMBINATIONS = (
    sweep_combinations(MICROSCOPY_SWEEP, config["models"])
    if MICROSCOPY_MODELS and MICROSCOPY_SWEEP.get("activate", False)
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
        if MICROSCOPY.get("source", "demo") == "download"
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
    sheet = MICROSCOPY.get("sheet", "config/sources.tsv")
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
    main = MICROSCOPY.get("main_components", 256)
    return [
        f"results/microscopy/instance_weights/{m}/pcs{main}/repeat{r}.npz"
        for m in MICROSCOPY_MODELS
        for r in MICROSCOPY_REPEATS
    ]


def compound_slug(compound):
    return re.sub(r"[^A-Za-z0-9]+", "_", compound).strip("_")


def montage_compound(wildcards):
    """The configured compound whose file-name slug is ``wildcards.compound``."""
    for compound in MICROSCOPY.get("montage", {}).get("compounds", []):
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
        for c in MICROSCOPY.get("montage", {}).get("compounds", [])
    ]
    if MICROSCOPY.get("source", "demo") == "demo":
        out.append("results/microscopy/tables/demo_cell_kinds.md")
    if MICROSCOPY_SWEEP_RUNS:
        out += [
            "results/microscopy/sweep/sweep_grid.md",
            "results/microscopy/sweep/selected_models.yaml",
        ]
    return out


MOMIL = config.get("momil", {})
MOMIL_REPEATS = list(range(MOMIL.get("n_repeats", 3)))


def momil_similarity_table():
    """The optional task-similarity table of MoMIL's selection as a list of inputs; a relative path is
    relative to the workflow directory (like the source sheets)."""
    path = MOMIL.get("selection", {}).get("similarity_table")
    return [str(Path(workflow.basedir) / path)] if path else []


def momil_outputs():
    if not MOMIL.get("activate", False):
        return []
    return ["results/momil/tables/momil_simulation.md"]


SMMILE = config.get("smmile", {})
SMMILE_MODELS = SMMILE.get("models", {}) if SMMILE.get("activate", False) else {}
SMMILE_REPEATS = list(range(SMMILE.get("n_repeats", 3)))
SMMILE_STUDIES = SMMILE.get("studies", ["simulation"]) if SMMILE_MODELS else []
C16_SLIDES = SMMILE.get("camelyon16", {})


def camelyon16_slides_root():
    """The CAMELYON16 folder (training/, testing/): the generated demo, or the user's local copy."""
    if C16_SLIDES.get("source", "demo") == "demo":
        return "resources/camelyon16_slides/demo"
    root = C16_SLIDES.get("root")
    if not root:
        raise ValueError(
            "config: smmile.camelyon16.source is 'local' but smmile.camelyon16.root is not set; point it at "
            "the CAMELYON16 folder holding training/ and testing/ (e.g. from s3://camelyon-dataset/CAMELYON16/)"
        )
    return root


def camelyon16_slide_paths():
    """Slide name -> (path, split folder) for every slide, known at parse time."""
    if "camelyon16" not in SMMILE_STUDIES:
        return {}
    from mixmil_workflow.camelyon16.slide_features import release_slide_paths

    demo = demo_slide_options() if C16_SLIDES.get("source", "demo") == "demo" else None
    return release_slide_paths(camelyon16_slides_root(), demo)


def demo_slide_options():
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in C16_SLIDES.get("demo", {}).items()
    }


C16_SLIDE_PATHS = camelyon16_slide_paths()


def smmile_data(wildcards):
    if wildcards.study == "camelyon16":
        return "results/smmile/camelyon16/data/slides.npz"
    return f"results/smmile/simulation/data/repeat{wildcards.repeat}.npz"


def smmile_outputs():
    if not SMMILE_MODELS:
        return []
    return [
        f"results/smmile/{kind}/spatial_{study}.{ext}"
        for study in SMMILE_STUDIES
        for kind, ext in (("tables", "md"), ("figures", "png"))
    ]


def final_outputs():
    return (
        simulation_outputs()
        + cost_outputs()
        + sweep_outputs()
        + camelyon16_outputs()
        + dataset_outputs()
        + genetics_outputs()
        + microscopy_outputs()
        + momil_outputs()
        + smmile_outputs()
    )
