"""The model registry: one table of types read by every study; adding a model = its class + one entry."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.base import MILModel, Prediction
from mixmil_workflow.models.persistence import as_array, load_model, save_model
from mixmil_workflow.models.registry import (
    ModelType,
    build,
    model_type,
    model_types,
    register,
    unregister,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ToyConfig:
    likelihood: str = "binomial"
    n_trials: int | None = 2
    seed: int = 0
    device: str = "cpu"
    ridge: float = 1.0


class ToyMIL(MILModel):
    """Ridge regression of the labels on mean-pooled instances; an instance's score is its projection."""

    config_class = ToyConfig

    def __init__(self, **kwargs):
        self.config = ToyConfig(**kwargs)
        self.coef: np.ndarray | None = None
        self.history = self.epoch_seconds = np.zeros(0)

    def fit(self, bags, y, covariates=None):
        x = bags.mean_pool().double().numpy()
        y = np.asarray(y, float).reshape(len(x), -1)
        x1 = np.c_[np.ones(len(x)), x]
        self.coef = np.linalg.solve(x1.T @ x1 + self.config.ridge * np.eye(x1.shape[1]), x1.T @ y)
        return self

    def predict(self, bags, covariates=None):
        eta = np.c_[np.ones(bags.n_bags), bags.mean_pool().double().numpy()] @ self.coef
        return Prediction(eta, eta, eta)

    def instance_scores(self, bags, covariates=None):
        return bags.x.double().numpy() @ self.coef[1:]

    def save(self, path):
        save_model(path, "toy/1", self.config, coef=self.coef)

    @classmethod
    def load(cls, path):
        payload = load_model(path, "toy/1", "toy")
        model = cls(**payload["config"])
        model.coef = as_array(payload["coef"])
        return model


@pytest.fixture
def toy_type():
    entry = register(
        ModelType(
            "toy_mil",
            "Toy MIL",
            f"{__name__}:ToyMIL",
            f"{__name__}:ToyConfig",
            "mil",
            frozenset({"simulation", "own_bags"}),
            uses_gpu=False,
            minibatch=False,
        )  # fmt: skip
    )
    yield entry
    unregister(entry.name)


def test_a_registered_toy_model_runs_through_the_simulation_study(toy_type):
    from mixmil_workflow.simulate.paper import SimulationParams, simulate
    from mixmil_workflow.studies.simulation import evaluate, model_runs

    spec = {"type": "toy_mil", "ridge": 0.5}
    simulation = {"models": ["toy"], "n_repeats": 1}
    assert model_runs(simulation, {"toy": spec}, ["default"]) == [("toy", "default", 0)]
    from mixmil_workflow.studies.simulation import run_model

    data = simulate(SimulationParams(n_train=120, n_test=40, n_instances=10, n_features=8, n_outputs=2), seed=1)
    result = run_model(spec, data, seed=0)
    assert result["bag_score"].shape == (40, 2) and result["instance_score"].shape == (400, 2)
    metrics = evaluate(data, result)
    assert (metrics["spearman"] > 0.2).all(), metrics


def test_a_registered_toy_model_runs_through_the_bring_your_own_bags_path(toy_type, tmp_path):
    from mixmil_workflow.own_bags.input import LabelSpec
    from mixmil_workflow.own_bags.plan import check_models
    from mixmil_workflow.own_bags.study import fit_fold

    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 8, size=30)
    x = rng.normal(size=(sizes.sum(), 4)).astype(np.float32)
    bags = Bags(torch.from_numpy(x), torch.as_tensor(np.r_[0, np.cumsum(sizes)]))
    y = bags.mean_pool().numpy()[:, 0] * 3 + rng.normal(scale=0.1, size=30)
    table = pd.DataFrame({"bag": [f"b{k:03d}" for k in range(30)], "fold": np.arange(30) % 3, "y": y})
    label = LabelSpec("y", "gaussian")
    check_models("mine", {"y": label}, ["toy"], {"toy": {"type": "toy_mil"}})
    predictions, instance = fit_fold({"type": "toy_mil"}, bags, table, label, [], 0, 0, "bag")
    assert len(predictions) == 10 and instance["weights"].shape == (sizes[table["fold"] == 0].sum(), 1)
    assert np.corrcoef(predictions["score"], predictions["y"])[0, 1] > 0.8


def test_every_study_reads_its_types_from_the_registry(toy_type):
    from mixmil_workflow.camelyon16.study import camelyon16_models
    from mixmil_workflow.studies.simulation import cost_models

    models = {"toy": {"type": "toy_mil"}}
    with pytest.raises(ValueError, match="camelyon16.models lists 'toy' of type 'toy_mil'"):
        camelyon16_models({"activate": True, "models": ["toy"]}, models)
    assert cost_models({}, models, ["toy"]) == []  # not trained by minibatch steps


def test_build_rejects_a_hyperparameter_of_another_type_naming_the_type():
    with pytest.raises(ValueError, match="'weight_decay' is not a hyperparameter of model type 'mixmil'"):
        build({"type": "mixmil", "weight_decay": 0.1}, seed=0)
    with pytest.raises(ValueError, match="'n_epochs' is not a hyperparameter of model type 'glmm'"):
        build({"type": "glmm", "n_epochs": 10}, seed=0)
    with pytest.raises(ValueError, match="unknown model type 'nope'"):
        build({"type": "nope"}, seed=0)


def test_config_hyperparameters_are_checked_at_parse_time_with_a_suggestion():
    import sys

    from mixmil_workflow.models.registry import check_config_options

    models = {"mine": {"type": "abmil", "n_epoch": 5}, "glmm": {"type": "glmm"}}
    with pytest.raises(ValueError, match=r"config: models.mine: 'n_epoch' .* did you mean 'n_epochs'\?"):
        check_config_options({"models": models})
    with pytest.raises(ValueError, match="config: models.g: 'lr' is not a hyperparameter of model type 'glmm'"):
        check_config_options({"models": {"g": {"type": "glmm", "lr": 0.1}}})
    check_config_options({"models": {"m": {"type": "mixmil", "posterior": "mean_field", "threads": 2}}})
    # the options dataclasses are torch-free, so this check costs the workflow's parse no torch import
    code = "import sys, mixmil_workflow.models.registry as r; r.model_type('mixmil').options(); "
    code += "print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


@pytest.mark.parametrize("name", model_types())
def test_every_registered_type_builds_an_interface_model_of_its_capabilities(name):
    entry = model_type(name)
    likelihood = entry.likelihoods[0]
    model = build({"type": name}, seed=0, likelihood=likelihood, n_trials=1 if likelihood == "binomial" else None)
    assert isinstance(model, MILModel)
    for method in ("fit", "predict", "instance_scores", "n_parameters", "save", "load"):
        assert callable(getattr(model, method))
    assert entry.line_style({"type": name})["label"]


def test_the_registry_is_the_one_list_of_types():
    """The schema leaves the type list to the registry (no enum to keep in step) and names each type for
    the reader; the workflow checks a config's types against the registry, naming the field."""
    from mixmil_workflow.models.registry import check_config_types

    schema = yaml.safe_load((REPO / "config/config.schema.yaml").read_text())
    model_type_schema = schema["properties"]["models"]["additionalProperties"]["properties"]["type"]
    assert "enum" not in model_type_schema
    assert all(name in model_type_schema["description"] for name in model_types() if name != "smmile")
    smmile = schema["properties"]["smmile"]["properties"]["models"]["additionalProperties"]["properties"]["type"]
    assert "enum" not in smmile
    check_config_types({"models": {"a": {"type": "abmil"}}, "smmile": {"models": {"s": {"type": "smmile"}}}})
    with pytest.raises(ValueError, match=r"models.a.type is 'abmil2', which is not a model type \(registered: mixmil"):
        check_config_types({"models": {"a": {"type": "abmil2"}}})
    with pytest.raises(ValueError, match="smmile.models.s.type is 'glmm', which is not a model type of the smmile"):
        check_config_types({"models": {}, "smmile": {"models": {"s": {"type": "glmm"}}}})


def test_a_registered_type_passes_the_workflows_check(toy_type):
    from mixmil_workflow.models.registry import check_config_types

    check_config_types({"models": {"mine": {"type": "toy_mil"}}})


@pytest.mark.parametrize("name", ["abmil", "gated_abmil", "bayes_mil", "additive_mil", "random_forest"])
def test_a_type_string_is_named_in_at_most_two_files(name):
    """The registry and the module that implements the type (types whose names are not also a library, a
    config section or an option value of another model); its hyperparameters' dataclass in models/options.py
    belongs to the implementation."""
    files = subprocess.run(
        ["git", "grep", "-lE", f"[\"']{name}[\"']", "--", "src", "rules", "scripts"],
        cwd=REPO, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    files = [f for f in files if f != "src/mixmil_workflow/models/options.py"]
    assert len(files) <= 2, files


FAST = {  # a few epochs or trees: only the round trip matters here
    "random_forest": {"pooling": "mean", "overrides": {"n_estimators": 5}},
    "xgboost": {"pooling": "mean", "overrides": {"n_estimators": 5}},
}


@pytest.mark.parametrize("name", [n for n in model_types() if not model_type(n).needs_coords])
def test_models_load_reads_any_saved_model_back_to_the_same_predictions(name, tmp_path):
    """``mixmil_workflow.models.load`` finds the class from the file: what the fit rules save, a user loads
    in one line and predicts new bags with."""
    from mixmil_workflow.models import load

    rng = np.random.default_rng(0)
    bags = Bags.from_list(
        [torch.from_numpy(rng.standard_normal((k, 4), dtype=np.float32)) for k in rng.integers(2, 9, 40)]
    )
    y = rng.integers(0, 3, (40, 2)).astype(np.float32)
    options = {"n_epochs": 2} if "n_epochs" in model_type(name).options() else {}
    spec = {"type": name, **options, **FAST.get(name, {})}
    model = build(spec, seed=0, device="cpu", likelihood="binomial", n_trials=2).fit(bags, y)
    model.save(tmp_path / "fit.pt")
    trusted = model_type(name).family == "tree"
    if trusted:
        with pytest.raises(ValueError, match="trusted=True"):
            load(tmp_path / "fit.pt")
    loaded = load(tmp_path / "fit.pt", trusted=trusted)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(bags).mean, model.predict(bags).mean)


def test_models_load_names_a_file_that_is_not_a_saved_model(tmp_path):
    from mixmil_workflow.models import load

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model saved by mixmil_workflow"):
        load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load(tmp_path / "missing.pt")
