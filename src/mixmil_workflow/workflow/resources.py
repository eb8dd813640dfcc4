"""Runtime and memory of training jobs from what they do: the cost model behind the rules' resources.

A scheduler kills a job at its time limit and a real cluster queues long requests behind short ones, so a
fixed ``runtime`` per rule is wrong both ways: minutes of GLMM asked for as two hours, hours of XGBoost
search killed at two. A simulation fit asks for

    runtime (minutes) = max(FLOOR_MINUTES, SAFETY x recorded CPU minutes x size x length x outputs / threads)
                        x attempt

- recorded CPU minutes: one fit of the same model type and variant (pooling, posterior) at the default
  scenario with the paper's hyperparameters, from the recorded cost benchmark
  (``benchmarks/results/paper_grid_cost.json``, whose models are those of ``config/paper.yaml``);
- size: training bags x instances per bag relative to the default scenario for the models that see
  instances, training bags alone for those that see one pooled row per bag (the benchmark's own scaling);
- length: epochs relative to the recorded fit's for the models trained by minibatch steps; the search's
  size (``n_iter`` x ``cv_folds``) relative to the recorded one for the tree searches;
- outputs: the simulation's outputs relative to the recorded fit's;
- threads: the trees spread their search over the job's threads; the torch models count as one;
- attempt: Snakemake's attempt counter, so a job killed for time (or memory) is retried once with twice
  as much (the cluster profile sets ``retries: 1``).

A model type without a recorded fit (one added after the benchmark) asks for UNRECORDED_MINUTES. Memory
is MEMORY_BASE_MB (Python, torch, the model) plus MEMORY_PER_INPUT x the job's input size, x attempt.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
RECORDED_COSTS = REPO / "benchmarks" / "results" / "paper_grid_cost.json"
RECORDED_CONFIG = REPO / "config" / "paper.yaml"

SAFETY = 3.0  # recorded on one idle core; a cluster's cores are slower or shared, and scenarios vary
FLOOR_MINUTES = 15  # start-up, imports and queue granularity
UNRECORDED_MINUTES = 240
MEMORY_BASE_MB = 2500
MEMORY_PER_INPUT = 20  # MB per MB of input: the data as float32 tensors, copies, predictions


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


def simulation_fit_minutes(spec: Mapping, scenario: Mapping, default: Mapping, n_outputs: int) -> float | None:
    """Expected CPU minutes of one simulation fit on one thread, or None without a recorded fit."""
    recorded = recorded_fits().get(_variant_key(spec))
    if recorded is None:
        return None
    length = _training_length(spec) / _training_length(recorded["spec"])
    outputs = n_outputs / recorded["n_outputs"]
    return recorded["seconds"] / 60 * size_factor(scenario, default, spec) * length * outputs


def simulation_fit_runtime(
    spec: Mapping, scenario: Mapping, default: Mapping, n_outputs: int, threads: int, attempt: int = 1
) -> int:
    """The ``runtime`` (minutes) a simulation fit job asks for (see the module's docstring)."""
    from mixmil_workflow.models.registry import spec_type

    minutes = simulation_fit_minutes(spec, scenario, default, n_outputs)
    if minutes is None:
        return UNRECORDED_MINUTES * attempt
    parallel = max(1, threads) if spec_type(spec).threads_option else 1
    return int(math.ceil(max(FLOOR_MINUTES, SAFETY * minutes / parallel))) * attempt


def job_memory_mb(input_mb: float, attempt: int = 1, base_mb: int = MEMORY_BASE_MB) -> int:
    """The ``mem_mb`` a training job asks for from the size of its input."""
    return int(base_mb + MEMORY_PER_INPUT * input_mb) * attempt
