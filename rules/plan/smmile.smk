# The plan of the smmile branch (rules/smmile.smk): its settings, runs, seeds, targets and input functions.

from mixmil_workflow.camelyon16.slides.features import (
    release_classes,
    release_slide_paths,
)

SMMILE = config["smmile"]
SMMILE_MODELS = SMMILE["models"] if SMMILE["activate"] else {}
SMMILE_REPEATS = list(range(SMMILE["n_repeats"]))
# the simulation's task families are studies of their own: simulation (binary), simulation_<task>
SPATIAL_STUDY_TASKS = {
    ("simulation" if task == "binary" else f"simulation_{task}"): task
    for task in SMMILE["simulation_tasks"]
}
SMMILE_STUDIES = (
    [
        s
        for study in SMMILE["studies"]
        for s in (SPATIAL_STUDY_TASKS if study == "simulation" else [study])
    ]
    if SMMILE_MODELS
    else []
)
C16_SLIDES = SMMILE["camelyon16"]


def spatial_simulation_seed(wildcards):
    """The binary study keeps its seeds; the other task families draw their own."""
    extra = [] if wildcards.study == "simulation" else [wildcards.study]
    return derive_seed(config["seed"], "spatial-simulation", wildcards.repeat, *extra)


def camelyon16_slides_root():
    """The CAMELYON16 folder (training/, testing/): the generated demo, or the user's local copy."""
    if C16_SLIDES["source"] == "demo":
        return "resources/camelyon16_slides/demo"
    root = C16_SLIDES.get("root")
    if not root:
        raise ValueError(
            "config: smmile.camelyon16.source is 'local' but smmile.camelyon16.root is not set; point it at "
            "the CAMELYON16 folder holding training/ and testing/ (e.g. from s3://camelyon-dataset/CAMELYON16/)"
        )
    return root


def demo_slide_options():
    return {
        k: tuple(v) if isinstance(v, list) else v for k, v in C16_SLIDES["demo"].items()
    }


# the generated release's settings (None: the user's local release)
C16_DEMO = demo_slide_options() if C16_SLIDES["source"] == "demo" else None
# annotation group -> category of the raw slides (None: Camelyon16's tumour groups)
C16_CLASSES = release_classes(C16_SLIDES.get("classes"), C16_DEMO)
check_spatial_tasks(SMMILE, C16_CLASSES)


def camelyon16_slide_paths():
    """Slide name -> (path, split folder) for every slide, known at parse time."""
    if "camelyon16" not in SMMILE_STUDIES:
        return {}
    return release_slide_paths(camelyon16_slides_root(), C16_DEMO)


C16_SLIDE_PATHS = camelyon16_slide_paths()


def smmile_data(wildcards):
    if wildcards.study == "camelyon16":
        return "results/smmile/camelyon16/data/slides.npz"
    return f"results/smmile/{wildcards.study}/data/repeat{wildcards.repeat}.npz"


def smmile_outputs():
    if not SMMILE_MODELS:
        return []
    return [
        f"results/smmile/{kind}/spatial_{study}.{ext}"
        for study in SMMILE_STUDIES
        for kind, ext in (("tables", "md"), ("figures", "png"))
    ]
