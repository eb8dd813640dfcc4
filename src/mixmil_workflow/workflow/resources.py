"""Runtime and memory of training jobs from what they do: the cost model behind the rules' resources.

A scheduler kills a job at its time limit and a real cluster queues long requests behind short ones, so a
fixed ``runtime`` per rule is wrong both ways: minutes of GLMM asked for as two hours, hours of XGBoost
search killed at two. A simulation fit asks for

    runtime (minutes) = max(floor, runtime_scale x SAFETY x recorded CPU minutes x size x length x outputs
                                   x fits / threads) x retry_factor ^ (attempt - 1)

- recorded CPU minutes: one fit of the same model type and variant (pooling, posterior) at the default
  scenario with the paper's hyperparameters, from the recorded cost benchmark
  (``benchmarks/results/paper_grid_cost.json``, whose models are those of ``config/paper.yaml``);
- size: training bags x instances per bag relative to the default scenario for the models that see
  instances, training bags alone for those that see one pooled row per bag (the benchmark's own scaling);
- length: epochs relative to the recorded fit's for the models trained by minibatch steps; the search's
  size (``n_iter`` x ``cv_folds``) relative to the recorded one for the tree searches;
- outputs: the simulation's outputs relative to the recorded fit's;
- threads: the trees spread their search over the job's threads; the torch models count as one;
- fits: the job's fits (one per simulated repeat); the floor (start-up, imports, queue granularity) is the
  job's, not each fit's;
- attempt: Snakemake's attempt counter, so a job killed for time (or memory) is retried with
  ``retry_factor`` times as much (the cluster profile sets ``retries: 1``).

A model type without a recorded fit (one added after the benchmark) asks for UNRECORDED_MINUTES; a model
entry's ``runtime`` key (minutes per training job) replaces the estimate. Memory is MEMORY_BASE_MB (Python,
torch, the model) plus MEMORY_PER_INPUT x the job's input size, x memory_retry_factor per retry. The config's
``resources`` section (``Scaling``) holds the knobs a site tunes: ``runtime_scale`` (slower or shared
cores), ``runtime_floor_minutes``, ``retry_factor``, ``memory_retry_factor`` and ``group_fits_under_minutes``.

The fits of a user's bags (``fit_dataset``) use the same recorded cost with their own size: training
bags, and instances x features from the prepared matrix (4 bytes a value), relative to the default
scenario's; x the job's outer fits, x (search candidates x inner folds + 1) under nested tuning
(``dataset_fit_runtime``). The paper's data branches (genetics, microscopy, Camelyon16) ask for fixed,
generous estimates per rule, scaled by ``runtime_scale`` and the retry factor.

Small fits are grouped on a cluster (``fit_group``): a simulation fit whose estimate is below
``group_fits_under_minutes`` joins the group ``simulation_fits_gpu`` or ``simulation_fits_cpu`` (so a
CPU-only model never rides on a GPU job), and the cluster profile's ``group-components`` says how many
such fits one submission runs. Local runs ignore groups.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
RECORDED_COSTS = REPO / "benchmarks" / "results" / "paper_grid_cost.json"
RECORDED_CONFIG = REPO / "config" / "paper.yaml"

SAFETY = 3.0  # recorded on one idle core; a cluster's cores are slower or shared, and scenarios vary
UNRECORDED_MINUTES = 240
MEMORY_BASE_MB = 2500
MEMORY_PER_INPUT = 20  # MB per MB of input: the data as float32 tensors, copies, predictions


@dataclasses.dataclass(frozen=True)
class Scaling:
    """The config's ``resources`` section: how estimates become requests (defaults in the config schema)."""

    runtime_scale: float = 1.0  # x every runtime (2: the site's cores are half as fast as the recording's)
    runtime_floor_minutes: int = 15  # no job asks for less
    retry_factor: float = 2.0  # a retried job asks for this much more runtime per attempt
    memory_retry_factor: float = 2.0  # and this much more memory
    group_fits_under_minutes: int = 120  # cluster runs group the simulation fits estimated below this

    @classmethod
    def from_config(cls, section: Mapping | None) -> Scaling:
        return cls(**(section or {}))

    def on_attempt(self, attempt: int, factor: float | None = None) -> float:
        return (self.retry_factor if factor is None else factor) ** (max(1, attempt) - 1)

    def runtime(self, minutes: float, attempt: int = 1) -> int:
        """A rule's runtime request (minutes) from its estimate, scaled for the site and the attempt."""
        first = math.ceil(max(self.runtime_floor_minutes, self.runtime_scale * minutes))
        return int(math.ceil(first * self.on_attempt(attempt)))

    def memory(self, mb: float, attempt: int = 1) -> int:
        return int(math.ceil(mb * self.on_attempt(attempt, self.memory_retry_factor)))


DEFAULT_SCALING = Scaling()
FLOOR_MINUTES = DEFAULT_SCALING.runtime_floor_minutes


def _variant_key(spec: Mapping) -> tuple[str, str | None]:
    from mixmil_workflow.models.registry import spec_type

    return spec["type"], spec_type(spec).variant(spec)


@functools.cache
def recorded_fits() -> dict[tuple[str, str | None], dict]:
    """(type, variant) -> the recorded default fit: CPU seconds, the model entry it was measured with and
    the simulation's outputs; empty when the record or its configuration is not there (an installed
    package without the repository)."""
    import yaml

    if not (RECORDED_COSTS.exists() and RECORDED_CONFIG.exists()):
        return {}
    record = json.loads(RECORDED_COSTS.read_text())
    config = yaml.safe_load(RECORDED_CONFIG.read_text())
    out: dict[tuple[str, str | None], dict] = {}
    for row in record["rows"]:
        spec = config["models"].get(row["model"])
        if spec is None:
            continue
        out.setdefault(
            _variant_key(spec),
            {"seconds": row["default_fit_seconds"], "spec": spec, "n_outputs": config["simulation"]["n_outputs"]},
        )
    return out


@functools.cache
def recorded_defaults() -> dict:
    """The default simulation scenario of the recorded configuration (the sizes the costs were measured at)."""
    import yaml

    return yaml.safe_load(RECORDED_CONFIG.read_text())["simulation"]["defaults"]


def _option(spec: Mapping, name: str):
    """A model entry's hyperparameter, or its type's default."""
    import dataclasses

    from mixmil_workflow.models.registry import spec_type

    if name in spec:
        return spec[name]
    config_class = spec_type(spec).options_dataclass()
    field = {f.name: f for f in dataclasses.fields(config_class)}.get(name)
    if field is None:
        return None
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _training_length(spec: Mapping) -> float:
    """Epochs (minibatch models) or search fits (trees) of a model entry; 1 for the others."""
    from mixmil_workflow.models.registry import spec_type

    entry = spec_type(spec)
    if entry.minibatch and _option(spec, "n_epochs") is not None:
        return float(_option(spec, "n_epochs"))
    if entry.family == "tree":
        if _option(spec, "overrides") and not _option(spec, "search_space"):
            return 1.0  # fixed hyperparameters: one fit, no search
        return float(_option(spec, "n_iter") * _option(spec, "cv_folds"))
    return 1.0


def sees_instances(spec: Mapping) -> bool:
    """Does the model's cost grow with the instances per bag (not only with the bags)?"""
    from mixmil_workflow.models.registry import spec_type

    return spec_type(spec).minibatch or spec.get("pooling") == "instance"


def size_factor(scenario: Mapping, default: Mapping, spec: Mapping) -> float:
    """A scenario's training size relative to the default scenario's, as the model's cost sees it."""
    factor = scenario["n_train"] / default["n_train"]
    return factor * scenario["n_instances"] / default["n_instances"] if sees_instances(spec) else factor


def _one_fit_minutes(spec: Mapping, size: float, n_outputs: int) -> float | None:
    """Expected CPU minutes of one fit on one thread at ``size`` x the recorded fit's training size, or
    None without a recorded fit."""
    recorded = recorded_fits().get(_variant_key(spec))
    if recorded is None:
        return None
    length = _training_length(spec) / _training_length(recorded["spec"])
    return recorded["seconds"] / 60 * size * length * n_outputs / recorded["n_outputs"]


def simulation_fit_minutes(spec: Mapping, scenario: Mapping, default: Mapping, n_outputs: int) -> float | None:
    """Expected CPU minutes of one simulation fit on one thread, or None without a recorded fit."""
    return _one_fit_minutes(spec, size_factor(scenario, default, spec), n_outputs)


def _job_runtime(spec: Mapping, minutes: float | None, fits: int, threads: int, attempt: int, scaling: Scaling) -> int:
    """A training job's runtime request from one fit's minutes: the model entry's ``runtime`` if set (only
    the retry scales it), the unrecorded default, or SAFETY x fits x minutes over the threads it uses."""
    from mixmil_workflow.models.registry import spec_type

    if spec.get("runtime") is not None:
        return int(math.ceil(spec["runtime"] * scaling.on_attempt(attempt)))
    if minutes is None:
        return scaling.runtime(UNRECORDED_MINUTES, attempt)
    parallel = max(1, threads) if spec_type(spec).threads_option else 1
    return scaling.runtime(SAFETY * fits * minutes / parallel, attempt)


def simulation_fit_runtime(
    spec: Mapping,
    scenario: Mapping,
    default: Mapping,
    n_outputs: int,
    threads: int,
    attempt: int = 1,
    n_fits: int = 1,
    scaling: Scaling = DEFAULT_SCALING,
) -> int:
    """The ``runtime`` (minutes) a simulation fit job of ``n_fits`` fits asks for (see the module's
    docstring)."""
    minutes = simulation_fit_minutes(spec, scenario, default, n_outputs)
    return _job_runtime(spec, minutes, n_fits, threads, attempt, scaling)


def dataset_fit_runtime(
    spec: Mapping,
    n_bags: int,
    input_mb: float,
    n_outputs: int,
    threads: int,
    attempt: int = 1,
    n_fits: int = 1,
    search_fits: int = 1,
    scaling: Scaling = DEFAULT_SCALING,
) -> int:
    """The ``runtime`` (minutes) of a job fitting ``n_fits`` outer folds on a user's bags (module docstring):
    ``n_bags`` bags, a prepared float32 matrix of ``input_mb`` MB, ``search_fits`` fits per outer fold."""
    default = recorded_defaults()
    if sees_instances(spec):
        size = input_mb * 2**20 / 4 / (default["n_train"] * default["n_instances"] * default["n_features"])
    else:
        size = n_bags / default["n_train"]
    minutes = _one_fit_minutes(spec, size, n_outputs)
    return _job_runtime(spec, minutes, n_fits * search_fits, threads, attempt, scaling)


def search_fits(space: Mapping, inner_folds: int) -> int:
    """Fits per outer fold under nested tuning: every grid point on every inner fold, then the refit."""
    if not space:
        return 1
    return math.prod(len(values) for values in space.values()) * inner_folds + 1


def fit_group(spec: Mapping, runtime_minutes: int, gpus: int, scaling: Scaling = DEFAULT_SCALING) -> str | None:
    """The cluster group of a simulation fit job (see the module's docstring), or None to submit it alone."""
    if spec.get("runtime") is not None or runtime_minutes >= scaling.group_fits_under_minutes:
        return None
    return "simulation_fits_gpu" if gpus else "simulation_fits_cpu"


def job_memory_mb(input_mb: float, attempt: int = 1, base_mb: int = MEMORY_BASE_MB,
                  scaling: Scaling = DEFAULT_SCALING) -> int:  # fmt: skip
    """The ``mem_mb`` a training job asks for from the size of its input."""
    return scaling.memory(base_mb + MEMORY_PER_INPUT * input_mb, attempt)
