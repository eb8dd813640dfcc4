"""The model registry: one table from a config ``type`` to its class and capabilities.

Every study, the config schema's type list, the workflow's GPU / thread / partition choices and the
figures read this table; adding a model is its class plus one :func:`register` call (and its tests).

This module imports no torch (nor anything heavy): Snakemake reads it when it parses the workflow, so
classes are named by import path and loaded only when a job builds a model.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from mixmil_workflow.models import options as model_options_module

# Studies a model type can be configured in (the config sections that list models).
STUDIES = ("simulation", "costs", "sweep", "camelyon16", "microscopy", "genetics", "own_bags", "smmile")
# Likelihoods of the labels (see models.likelihoods).
LIKELIHOODS = ("binomial", "bernoulli", "categorical", "gaussian")
# Keys of a model's config entry that the workflow consumes; the rest are the model's hyperparameters.
WORKFLOW_KEYS = ("type", "scenarios", "threads", "runtime")
# Hyperparameters every study sets from the labels, the job's seed and its device, never the config.
STUDY_SET_OPTIONS = ("likelihood", "n_trials", "n_classes", "seed", "device")


@dataclass(frozen=True)
class ModelType:
    """One model type and what it can do."""

    name: str  # the config's ``type``
    label: str  # display name in tables and figures
    class_path: str  # "module:Class" of the model (implements models.base.MILModel)
    # Its hyperparameters' dataclass: a name in models.options, or "module:Class" of a torch-free module
    # (read when the workflow is parsed, to check config entries before any job runs).
    options_class: str
    family: str  # "mixmil", "glmm", "mil" (neural MIL baselines), "tree" or "spatial"
    studies: frozenset[str]  # the studies that accept it
    likelihoods: tuple[str, ...] = LIKELIHOODS
    uses_gpu: bool = True  # runs on a GPU when the job sees one (else CPU-only: no GPU requested)
    minibatch: bool = True  # trained by optimiser steps on minibatches of bags (the cost table's models)
    covariates: bool = True  # takes covariates (fixed effects, or regressed out of the embeddings)
    instance_scores: bool = True  # gives a score per instance (attention weights, contributions)
    needs_coords: bool = False  # fit / predict need each instance's grid position (``coords=``)
    is_reference: bool = False  # the model the comparisons pair every other with (MixMIL)
    sweepable: tuple[str, ...] = ()  # hyperparameters a sweep may vary
    fixed_options: Mapping[str, object] = field(default_factory=dict)  # passed to the class, not configurable
    threads_option: str | None = None  # constructor argument that receives the config entry's ``threads``
    style: Mapping[str, str] = field(default_factory=dict)  # matplotlib color and marker of its line
    # Variants of one type drawn as separate lines (a tree's pooling, MixMIL's posterior): the option that
    # names the variant, its default, and each variant's style (color / marker / label) over ``style``.
    variant_option: str | None = None
    default_variant: str | None = None
    variant_styles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def variant(self, spec: Mapping) -> str | None:
        return None if self.variant_option is None else spec.get(self.variant_option, self.default_variant)

    def line_style(self, spec: Mapping) -> dict[str, str]:
        """Color, marker and legend label of a config entry's line in the figures."""
        return {"label": self.label, **self.style, **self.variant_styles.get(self.variant(spec), {})}

    def options_dataclass(self) -> type:
        module, _, name = self.options_class.rpartition(":")
        return getattr(importlib.import_module(module) if module else model_options_module, name)

    def options(self) -> tuple[str, ...]:
        """The hyperparameters a config entry of this type may set."""
        config_class = self.options_dataclass()
        skip = set(STUDY_SET_OPTIONS) | set(self.fixed_options) | ({self.threads_option} - {None})
        return tuple(f.name for f in dataclasses.fields(config_class) if f.name not in skip)

    def load_class(self) -> type:
        module, _, name = self.class_path.partition(":")
        return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, ModelType] = {}


def register(entry: ModelType, *, replace: bool = False) -> ModelType:
    """Add a model type (``replace``: overwrite an existing one, e.g. in a test)."""
    unknown = sorted(set(entry.studies) - set(STUDIES))
    if unknown:
        raise ValueError(f"model type {entry.name!r}: unknown studies {unknown} (known: {', '.join(STUDIES)})")
    bad = sorted(set(entry.likelihoods) - set(LIKELIHOODS))
    if bad:
        raise ValueError(f"model type {entry.name!r}: unknown likelihoods {bad} (known: {', '.join(LIKELIHOODS)})")
    if entry.name in _REGISTRY and not replace:
        raise ValueError(f"model type {entry.name!r} is registered already")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def model_type(name: str) -> ModelType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model type {name!r} (known: {', '.join(_REGISTRY)})") from None


def model_types(*, study: str | None = None, family: str | None = None, **capabilities) -> list[str]:
    """Registered type names, in registration order, that are accepted by ``study`` / of ``family`` and
    have the given capabilities (e.g. ``minibatch=True``)."""
    out = []
    for entry in _REGISTRY.values():
        if study is not None and study not in entry.studies:
            continue
        if family is not None and entry.family != family:
            continue
        if all(getattr(entry, key) == value for key, value in capabilities.items()):
            out.append(entry.name)
    return out


def spec_type(spec: Mapping) -> ModelType:
    """The registry entry of a config model entry."""
    return model_type(spec["type"])


def model_options(spec: Mapping) -> dict:
    """A config model entry's hyperparameters (the keys the workflow does not consume)."""
    return {k: v for k, v in spec.items() if k not in WORKFLOW_KEYS}


def build(
    spec: Mapping,
    seed: int,
    device: str = "cpu",
    likelihood: str = "binomial",
    n_trials: int | None = 2,
    n_classes: int | None = None,
):
    """A configured, unfitted model of any registered type from its config entry.

    By default for the binomial(2) simulation labels (Camelyon16: ``n_trials=1``, Bernoulli). A spec's
    ``threads`` goes to the models that take a thread count (the trees' ``n_jobs``); torch models use the
    process's threads (``torch.set_num_threads``, set by the jobs). A hyperparameter the type does not have
    is one error naming the type and its hyperparameters. ``n_classes``: a categorical label's class count,
    fixed from the whole label column (a class absent from one training fold still gets its output).
    """
    entry = spec_type(spec)
    cls = entry.load_class()
    options = model_options(spec)
    check_options(entry, options, f"model type {entry.name!r}")
    kwargs = {**entry.fixed_options, **options, "likelihood": likelihood, "n_trials": n_trials, "seed": seed}
    if n_classes is not None:
        kwargs["n_classes"] = n_classes
    if entry.uses_gpu:
        kwargs["device"] = device
    if entry.threads_option:
        kwargs[entry.threads_option] = int(spec.get("threads", 1))
    return cls(**kwargs)


def check_options(entry: ModelType, options: Mapping, where: str) -> None:
    """One error naming each hyperparameter ``entry`` does not have, the closest it does, and all of them."""
    from mixmil_workflow.workflow.config_checks import did_you_mean

    known = entry.options()
    for key in options:
        if key not in known:
            hint = did_you_mean(key, known)
            raise ValueError(
                f"{where}: {key!r} is not a hyperparameter of model type {entry.name!r}; {hint}"
                f"its hyperparameters: {', '.join(sorted(known))}"
            )


def check_config_options(config: Mapping) -> None:
    """Parse-time check of every model entry's hyperparameters against its type's (so a ``weight_decay``
    on MixMIL, or ``n_epochs`` on the GLMM, stops the run before any job, not in every training job)."""
    sections = [("models", config.get("models") or {})]
    sections.append(("smmile.models", (config.get("smmile") or {}).get("models") or {}))
    for field_name, models in sections:
        for name, spec in models.items():
            check_options(spec_type(spec), model_options(spec), f"config: {field_name}.{name}")


def check_likelihood(field_name: str, name: str, spec: Mapping, likelihood: str, what: str) -> None:
    """Parse-time check that model ``name`` can fit labels of ``likelihood`` (``what`` names the labels)."""
    entry = spec_type(spec)
    if likelihood not in entry.likelihoods:
        raise ValueError(
            f"config: {field_name}: model {name!r} ({entry.name}) fits {' and '.join(entry.likelihoods)} labels "
            f"only, but {what} is {likelihood}; drop the model or the label"
        )


# The label likelihood of each task family of the spatial (SMMILe) study, and the SMMILe form it takes.
SPATIAL_TASKS = {"binary": "bernoulli", "multiclass": "categorical", "multilabel": "bernoulli"}


def check_spatial_tasks(smmile: Mapping, slide_classes: Mapping[str, int] | None) -> None:
    """Parse-time check of the smmile study: every model fits every task family's labels, and a SMMILe
    entry's explicit ``form`` is the family's (``auto`` follows the labels). ``slide_classes``: the raw
    slides' annotation group -> category map (camelyon16.slides.features.release_classes; None:
    Camelyon16's single tumour category)."""
    studies = smmile.get("studies") or ["simulation"]
    tasks = list(smmile.get("simulation_tasks") or ["binary"]) if "simulation" in studies else []
    if "camelyon16" in studies:  # raw slides: multiclass when the annotation classes name several categories
        tasks.append("multiclass" if len(set((slide_classes or {}).values())) > 1 else "binary")
    for name, spec in (smmile.get("models") or {}).items():
        for task in tasks:
            check_likelihood(f"smmile.models.{name}", name, spec, SPATIAL_TASKS[task], f"the {task} task's labels")
            form = spec.get("form", "auto") if spec.get("type") == "smmile" else "auto"
            if form not in ("auto", task):
                raise ValueError(
                    f"config: smmile.models.{name}.form is {form!r}, but the smmile study runs the {task} task "
                    f"(smmile.simulation_tasks, smmile.camelyon16.classes); set form: auto (the form follows each "
                    f"task's labels) or run only {form!r}"
                )


def check_config_types(config: Mapping) -> None:
    """Parse-time check that every model entry of the config names a registered type (the schema leaves
    the type list to the registry, so that a new model is its class and its entry here)."""
    sections = [("models", config.get("models") or {}, None)]
    smmile = config.get("smmile") or {}
    sections.append(("smmile.models", smmile.get("models") or {}, "smmile"))
    for field_name, models, study in sections:
        allowed = model_types() if study is None else model_types(study=study)
        for name, spec in models.items():
            kind = spec.get("type") if isinstance(spec, Mapping) else None
            if kind not in allowed:
                raise ValueError(
                    f"config: {field_name}.{name}.type is {kind!r}, which is not a model type "
                    + ("" if study is None else f"of the {study} study ")
                    + f"(registered: {', '.join(allowed)}); fix the type, or register the model in "
                    "src/mixmil_workflow/models/registry.py"
                )


def leaves_out_missing_labels(spec: Mapping, likelihood: str) -> bool:
    """Whether a config entry's model fits labels with gaps (NaN), leaving those bags out of its fit: a
    type with the ``missing_labels`` option (MixMIL, the GLMM) set on, for binomial or Bernoulli labels."""
    has_option = "missing_labels" in spec_type(spec).options()
    return has_option and bool(spec.get("missing_labels")) and likelihood in ("binomial", "bernoulli")


def gpus(spec: Mapping) -> int:
    """GPUs a training job of this model asks for: 1 for the models that use one, 0 for CPU-only ones."""
    return int(spec_type(spec).uses_gpu)


def threads(spec: Mapping) -> int:
    """CPU threads of a training job: the model entry's ``threads`` (default 1)."""
    return int(spec.get("threads", 1))


# The models of the paper and of the newer systems ---------------------------------------------------
_NEURAL = frozenset(STUDIES)  # the neural baselines run in every study
_ALL = _NEURAL - {"sweep"}  # MixMIL: every study but the baselines' sweep
_NEURAL_SWEEP = (
    "loss",
    "lr",
    "weight_decay",
    "hidden_dim",
    "attention_dim",
    "kl_weight",
    "dropout",
    "n_epochs",
    "batch_size",
)  # fmt: skip (Tables C.1, C.5 and C.7 and the training length)


def _tree_styles(label: str, *colours: str) -> dict[str, dict[str, str]]:
    """A tree library's lines: one colour family per library, one marker per bag pooling (Fig. E.1 (ii))."""
    markers = {"mean": "s", "median": "D", "moments": "P", "instance": "X"}
    return {
        pooling: {"color": colour, "marker": marker, "label": f"{label} ({pooling})"}
        for (pooling, marker), colour in zip(markers.items(), colours, strict=True)
    }


register(ModelType(
    "mixmil", "MixMIL", "mixmil_workflow.models.mixmil:MixMIL", "MixMILConfig", "mixmil", _ALL,
    is_reference=True, style={"color": "#c0392b", "marker": "o"}, variant_option="posterior",
    default_variant="full_rank",
    variant_styles={"mean_field": {"color": "#e67e22", "marker": "s", "label": "MixMIL (mean field)"}},
))  # fmt: skip
register(ModelType(
    "glmm", "GLMM", "mixmil_workflow.models.glmm:GLMM", "GLMMConfig", "glmm",
    frozenset({"simulation", "camelyon16", "genetics", "own_bags"}),
    uses_gpu=False, minibatch=False, instance_scores=False, style={"color": "#2c3e50", "marker": "^"},
    variant_option="pooling", default_variant="mean",
    variant_styles={"instance": {"marker": "X", "label": "GLMM (instance)"}},
))  # fmt: skip
register(ModelType(
    "abmil", "ABMIL", "mixmil_workflow.models.attention_mil:AttentionMIL", "AttentionMILConfig", "mil", _NEURAL,
    sweepable=_NEURAL_SWEEP, fixed_options={"gated": False}, style={"color": "#2980b9", "marker": "v"},
))  # fmt: skip
register(ModelType(
    "gated_abmil", "Gated ABMIL", "mixmil_workflow.models.attention_mil:AttentionMIL", "AttentionMILConfig",
    "mil", _NEURAL,
    sweepable=_NEURAL_SWEEP, fixed_options={"gated": True}, style={"color": "#16a085", "marker": "P"},
))  # fmt: skip
register(ModelType(
    "dsmil", "DSMIL", "mixmil_workflow.models.dsmil:DSMIL", "DSMILConfig", "mil", _NEURAL,
    sweepable=_NEURAL_SWEEP, style={"color": "#8e44ad", "marker": "X"},
))  # fmt: skip
register(ModelType(
    "bayes_mil", "Bayes-MIL", "mixmil_workflow.models.bayes_mil:BayesMIL", "BayesMILConfig", "mil", _NEURAL,
    sweepable=_NEURAL_SWEEP, style={"color": "#7f8c8d", "marker": "D"},
))  # fmt: skip
register(ModelType(
    "additive_mil", "Additive MIL", "mixmil_workflow.models.additive_mil:AdditiveMIL", "AdditiveMILConfig",
    "mil", _NEURAL,
    sweepable=_NEURAL_SWEEP, style={"color": "#d35400", "marker": "*"},
))  # fmt: skip
register(ModelType(
    "momil", "MoMIL", "mixmil_workflow.models.momil:MoMIL", "MoMILConfig", "mil",
    frozenset({"simulation", "costs", "genetics", "own_bags", "sweep"}),
    likelihoods=("binomial", "bernoulli"), style={"color": "#27ae60", "marker": "h"},
    # the paper's searched space (Section 3): projector 64 / 128, heads 32 / 64 / 128, three learning rates
    sweepable=("lr", "weight_decay", "projector_dim", "hidden_dim", "dropout", "n_epochs", "warmup_epochs"),
))  # fmt: skip
register(ModelType(
    "random_forest", "Random Forest", "mixmil_workflow.models.trees:TreeMIL", "TreeMILConfig", "tree",
    frozenset({"simulation", "own_bags"}), likelihoods=("binomial", "bernoulli"), uses_gpu=False,
    minibatch=False, instance_scores=False, fixed_options={"kind": "random_forest"}, threads_option="n_jobs",
    style={"color": "#1e8449", "marker": "s"}, variant_option="pooling", default_variant="mean",
    variant_styles=_tree_styles("Random Forest", "#1e8449", "#52be80", "#0b5345", "#a9dfbf"),
))  # fmt: skip
register(ModelType(
    "xgboost", "XGBoost", "mixmil_workflow.models.trees:TreeMIL", "TreeMILConfig", "tree",
    frozenset({"simulation", "own_bags"}), likelihoods=("binomial", "bernoulli"), uses_gpu=False,
    minibatch=False, instance_scores=False, fixed_options={"kind": "xgboost"}, threads_option="n_jobs",
    style={"color": "#6c3483", "marker": "s"}, variant_option="pooling", default_variant="mean",
    variant_styles=_tree_styles("XGBoost", "#6c3483", "#a569bd", "#4a235a", "#d2b4de"),
))  # fmt: skip
register(ModelType(
    "smmile", "SMMILe", "mixmil_workflow.models.smmile:SMMILe", "SMMILeConfig", "spatial", frozenset({"smmile"}),
    likelihoods=("bernoulli", "binomial", "categorical"), minibatch=False, needs_coords=True,
    style={"color": "#b7950b", "marker": "p"},
))  # fmt: skip
