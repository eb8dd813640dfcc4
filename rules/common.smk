import hashlib
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
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
    # The scheduler's import paths, which Snakemake appends to every script job's: the job preamble
    # (mixmil_workflow.workflow.job) drops those that are not the job interpreter's own.
    MIXMIL_SCHEDULER_PATH=os.pathsep.join(sys.path),
)

from mixmil_workflow.camelyon16.study import camelyon16_models  # noqa: E402
from mixmil_workflow.own_bags.plan import plan_dataset  # noqa: E402
from mixmil_workflow.download import read_source_sheet  # noqa: E402
from mixmil_workflow.genetics.demo import (
    LYMPHOID_ESNP_CODES,
    OTHER_ESNP_CODES,
)  # noqa: E402
from mixmil_workflow.genetics.training import (
    genetics_baselines,
    genetics_covariates,
    genetics_models,
)  # noqa: E402
from mixmil_workflow.models.registry import (  # noqa: E402
    check_config_options,
    check_config_types,
    check_spatial_tasks,
    gpus as model_gpus,
    spec_type,
    threads as model_threads,
)
from mixmil_workflow.microscopy.study import microscopy_models  # noqa: E402
from mixmil_workflow.workflow.provenance import config_provenance  # noqa: E402
from mixmil_workflow.scorecard import PAPER_VALUES, source_tables  # noqa: E402
from mixmil_workflow.studies.sweep import sweep_combinations, sweep_runs  # noqa: E402
from mixmil_workflow.workflow.resources import (  # noqa: E402
    Scaling,
    fit_group,
    job_memory_mb,
    simulation_fit_runtime,
)
from mixmil_workflow.studies.simulation import (  # noqa: E402
    DEFAULT_SCENARIO,
    cost_models,
    derive_seed,
    model_runs,
    reference_model,
    scenario_grid,
)

from mixmil_workflow.workflow.code import code_digest  # noqa: E402
from mixmil_workflow.workflow.config_checks import check_config  # noqa: E402
from mixmil_workflow.workflow.profile_checks import (  # noqa: E402
    check_resource_overrides,
    check_slurm_run,
)

# Our check first: key path first, did-you-mean for a misspelled key; Snakemake's then fills the defaults.
check_config(config, Path(workflow.basedir) / "config" / "config.schema.yaml")
validate(config, schema="../config/config.schema.yaml")
check_config_types(config)
check_config_options(config)


def package_code(script):
    """Digest of the package modules that a rule's script imports: a parameter, so that editing one of
    them reruns exactly the rules that run it (Snakemake itself tracks only the script file).
    """
    return code_digest(Path(workflow.basedir) / script, SRC)


def saved_model(study, path):
    """A fit rule's ``model`` output where ``save_models.<study>`` is on, else none."""
    return {"model": path} if config["save_models"][study] else {}


SIMULATION = config["simulation"]
SCENARIOS = scenario_grid(SIMULATION)


wildcard_constraints:
    scenario="|".join(map(lambda s: s.replace(".", r"\."), SCENARIOS)),
    model="|".join(config["models"]),
    repeat=r"\d+",
    combo=r"\d+",
    seed=r"\d+",
    fold=r"\d+",
    unit=r"all|r\d+f\d+",
    dataset="|".join(config["datasets"]) or "no-datasets",
    plate=r"Week\d+_\d+",
    compound=r"[A-Za-z0-9_]+",


def table_provenance(models, **sections):
    """A result table's provenance parameter: digest of exactly the config sections (and models) it
    depends on plus the root seed, so that editing another branch's settings does not rerun it.
    """
    sections["models"] = {m: config["models"][m] for m in models}
    return config_provenance(sections, config["seed"])


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
        + scorecard_outputs()
        + training_curve_outputs()
    )
