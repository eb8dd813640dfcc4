import numpy as np
import pytest

from mixmil_workflow.models.registry import build as build_model
from mixmil_workflow.studies.costs import measure_model_costs, save_cost_tables


@pytest.mark.parametrize(
    "spec",
    [
        dict(type="abmil"),
        dict(type="bayes_mil", mc_samples=2),
        dict(type="mixmil", n_predictive_samples=8),
    ],
    ids=lambda s: s["type"],
)
def test_costs_time_training_steps_and_predictions_and_count_parameters(small_sim, spec):
    row = measure_model_costs("m", spec, small_sim, seed=0, batch_size=32, n_epochs=3, n_timings=3)
    assert row["batch_ms_mean"] > 0 and row["predict_ms_mean"] > 0
    assert np.isfinite(row["batch_ms_se"]) and np.isfinite(row["predict_ms_se"])
    # One output, counted as the model counts itself.
    model = build_model({**spec, "n_epochs": 0, "progress": False}, 0)
    model.fit(small_sim.bags("train"), small_sim.y_train[:, :1])
    counts = model.n_parameters()
    assert (row["likelihood_parameters"], row["variational_parameters"]) == (
        counts["likelihood"],
        counts["variational"],
    )
    assert row["n_features"] == small_sim.x_train.shape[-1] and row["batch_size"] == 32


def test_costs_reject_models_without_minibatch_training(small_sim):
    with pytest.raises(ValueError, match="costs are measured for the MIL models"):
        measure_model_costs("rf", dict(type="random_forest"), small_sim, seed=0)
    with pytest.raises(ValueError, match="n_epochs >= 2"):
        measure_model_costs("m", dict(type="abmil"), small_sim, seed=0, n_epochs=1)


def test_cost_tables_have_the_table_1_columns(tmp_path):
    rows = [
        dict(
            model="abmil",
            batch_ms_mean=1.5,
            batch_ms_se=0.1,
            predict_ms_mean=0.2,
            predict_ms_se=0.01,
            likelihood_parameters=1922,
            variational_parameters=0,
            batch_size=64,
            n_features=30,
            n_train_bags=1000,
            n_outputs=1,
            n_covariates=6,
            device="cpu",
        ),
    ]
    text = save_cost_tables(rows, tmp_path / "c.tsv", tmp_path / "c.md", None, tmp_path / "c.html")
    assert "| abmil" in text and "1.50 ± 0.10" in text and "1922" in text and "Q = 30" in text
    assert "1 output(s), 6 covariate(s)" in text and text == (tmp_path / "c.md").read_text()
    page = (tmp_path / "c.html").read_text()  # the report's inline page: the same table and note
    assert "<td>1.50 ± 0.10</td>" in page and "Q = 30" in page and 'class="dataframe sortable"' in page


def test_cost_models_default_to_the_simulations_mil_models_and_can_be_switched_off():
    from mixmil_workflow.studies.simulation import cost_models

    models = {"mixmil": {"type": "mixmil"}, "glmm": {"type": "glmm"}, "abmil": {"type": "abmil"}}
    assert cost_models({}, models, ["glmm", "abmil", "mixmil"]) == ["abmil", "mixmil"]
    assert cost_models({"models": ["mixmil"]}, models, ["abmil"]) == ["mixmil"]
    # Switched off, nothing is checked: a config without MixMIL need not mention the cost table.
    assert cost_models({"activate": False, "models": ["missing"]}, models, []) == []
    assert cost_models({}, {"glmm": {"type": "glmm"}}, ["glmm"]) == []
    with pytest.raises(ValueError, match="not defined under models.*costs.activate: false"):
        cost_models({"models": ["missing"]}, models, [])
