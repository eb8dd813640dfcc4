"""The model lists of every branch are checked with one wording: field, model, type and fix."""

from __future__ import annotations

import pytest

from mixmil_workflow.camelyon16.study import camelyon16_models
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.plan import check_models
from mixmil_workflow.workflow.config_checks import check_model_names

MODELS = {"mixmil": {"type": "mixmil"}, "rf": {"type": "random_forest"}, "abmil": {"type": "abmil"}}


def test_unknown_and_wrong_type_name_the_field_and_the_fix():
    assert check_model_names("x.models", ["mixmil"], MODELS) == ["mixmil"]
    with pytest.raises(ValueError, match=r"x\.models lists 'nope', which is not defined under models: add it"):
        check_model_names("x.models", ["nope"], MODELS)
    with pytest.raises(ValueError, match=r"x\.models lists 'rf' of type 'random_forest'; only MIL: mixmil, abmil"):
        check_model_names("x.models", ["rf"], MODELS, ["mixmil", "abmil"], purpose="only MIL")


def test_each_branch_uses_the_shared_check():
    with pytest.raises(ValueError, match=r"camelyon16\.models lists 'nope'"):
        camelyon16_models({"activate": True, "models": ["nope"]}, MODELS)
    with pytest.raises(ValueError, match=r"camelyon16\.models lists 'rf' of type 'random_forest'"):
        camelyon16_models({"activate": True, "models": ["rf"]}, MODELS)
    labels = {"y": LabelSpec.parse("y", {"likelihood": "gaussian"})}
    with pytest.raises(ValueError, match=r"datasets\.cv\.models lists 'nope'"):
        check_models("cv", labels, ["nope"], MODELS)
    # A tree model cannot fit a Gaussian label: the dataset check still names model and label.
    only = r"model 'rf' \(random_forest\) fits binomial and bernoulli labels only, but label 'y' is gaussian"
    with pytest.raises(ValueError, match=only):
        check_models("cv", labels, ["rf"], MODELS)
