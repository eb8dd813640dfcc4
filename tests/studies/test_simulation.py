from pathlib import Path

import numpy as np
import yaml

from mixmil_workflow.metrics import format_mean_se, mean_and_se, retrieval_auc_per_output, spearman_per_output
from mixmil_workflow.simulate.paper import SimulationParams, simulate

REPO = Path(__file__).resolve().parents[2]


def test_simulation_shapes_and_moments():
    params = SimulationParams(n_train=400, n_test=100, n_instances=30, n_features=12, n_outputs=3, v_beta=0.5)
    data = simulate(params, seed=0)
    assert data.x_train.shape == (400, 30, 12) and data.x_test.shape == (100, 30, 12)
    assert data.y_train.shape == (400, 3) and set(np.unique(data.y_train)) <= {0, 1, 2}
    np.testing.assert_allclose(data.w_train.sum(1), 1.0)
    u = np.concatenate([data.u_train, data.u_test])
    np.testing.assert_allclose(u.var(0), 0.5, rtol=1e-6)
    # Training instances are standardised to sd 1/sqrt(Q) per feature.
    np.testing.assert_allclose(data.x_train.reshape(-1, 12).std(0), 1 / np.sqrt(12), rtol=1e-3)


def test_simulation_is_deterministic_per_seed():
    params = SimulationParams(n_train=50, n_test=20, n_instances=5, n_features=4)
    a, b, c = simulate(params, 7), simulate(params, 7), simulate(params, 8)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_metrics_on_known_cases():
    truth = np.arange(10.0)[:, None]
    np.testing.assert_allclose(spearman_per_output(truth**3, truth), [1.0])
    w_true = np.linspace(0, 1, 100)[:, None]
    np.testing.assert_allclose(retrieval_auc_per_output(w_true, w_true), [1.0])
    np.testing.assert_allclose(retrieval_auc_per_output(-w_true, w_true), [0.0])
    mean, se = mean_and_se(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and np.isclose(se, 1 / np.sqrt(3))


def test_every_table_writes_a_mean_and_its_se_one_way():
    """The one formatter of the workflow's tables: mean ± s.e. at the asked digits, the mean alone when the
    s.e. is missing (one repeat), the table's marker when the mean is."""
    assert format_mean_se(0.81449, 0.0113) == "0.814 ± 0.011"
    assert format_mean_se(1.5, 0.25, 2) == "1.50 ± 0.25"
    assert format_mean_se(0.5, float("nan")) == "0.500"
    assert format_mean_se(float("nan"), 0.1) == "–" and format_mean_se(float("nan"), 0.1, missing="n/a") == "n/a"


def test_axis_figure_without_axes_says_so_instead_of_failing():
    import pandas as pd

    from mixmil_workflow.studies.simulation_plots import axis_figure

    empty = pd.DataFrame(columns=["axis", "scenario", "value", "model", "spearman_mean", "spearman_se"])
    fig = axis_figure(empty, "spearman", ["mixmil"], {}, title="t")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("simulation.axes is empty" in t for t in texts)


def test_figure_styles_label_models_by_type_pooling_and_posterior_and_keep_lines_apart():
    from mixmil_workflow.studies.simulation_plots import figure_model_sets, model_styles

    config = yaml.safe_load((REPO / "config" / "table_e1.yaml").read_text())
    specs = {**config["models"], "my_mean_field": {"type": "mixmil", "posterior": "mean_field"}}
    specs["xgb_median"] = {"type": "xgboost", "pooling": "median"}
    models = list(specs)
    styles = model_styles(models, specs)
    assert styles["mixmil"]["label"] == "MixMIL" and styles["my_mean_field"]["label"] == "MixMIL (mean field)"
    assert styles["rf_mean"]["label"] == "Random Forest (mean)" and styles["xgb_median"]["label"] == "XGBoost (median)"
    # xgboost_mean and xgboost_defaults are both mean-pooled XGBoost: their config names tell them apart
    assert styles["xgboost_mean"]["label"] == "XGBoost (mean): xgboost_mean"
    assert styles["xgboost_defaults"]["label"] == "XGBoost (mean): xgboost_defaults"
    labels = [style["label"] for style in styles.values()]
    assert len(set(labels)) == len(labels)
    lines = [(style["color"], style["marker"]) for style in styles.values()]
    assert len(set(lines)) == len(lines)

    sets = figure_model_sets(models, specs)
    assert sets["traditional"] == [
        "mixmil", "glmm", "rf_mean", "xgboost_mean", "xgboost_defaults", "rf_instance_leaves", "xgb_median"
    ]  # fmt: skip
    assert sets["posteriors"] == ["mixmil", "my_mean_field"]
    assert "rf_mean" not in sets["mil"] and "abmil" in sets["mil"]


def test_axis_figure_legend_names_models_drawn_in_any_panel_with_the_title_above():
    import pandas as pd

    from mixmil_workflow.studies.simulation_plots import axis_figure

    rows = [
        ("n_train", "n_train-100", 100, "glmm", 0.3),
        ("n_train", "n_train-1000", 1000, "glmm", 0.5),
        ("v_gamma", "v_gamma-0.1", 0.1, "glmm", 0.8),
        ("v_gamma", "v_gamma-0.1", 0.1, "rf_mean", 0.6),  # only in the second panel
    ]
    table = pd.DataFrame(rows, columns=["axis", "scenario", "value", "model", "spearman_mean"])
    table["spearman_se"] = 0.01
    styles = {
        "glmm": {"color": "k", "marker": "^", "label": "GLMM"},
        "rf_mean": {"color": "g", "marker": "s", "label": "RF"},
    }
    fig = axis_figure(table, "spearman", ["glmm", "rf_mean"], {"n_train": 1000, "v_gamma": 0.8}, "T", styles)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["GLMM", "RF"]
    assert legend.get_title().get_text() == "T"


def test_evaluate_runs_scores_every_run_as_evaluate_does_and_names_a_bad_predictions_file(tmp_path):
    import pytest

    from mixmil_workflow.io import save_npz
    from mixmil_workflow.studies.simulation import evaluate, evaluate_runs, summarise_runs

    params = SimulationParams(n_train=30, n_test=40, n_instances=6, n_features=4, n_outputs=2)
    datasets = {}
    for repeat in (0, 1):
        datasets[repeat] = simulate(params, seed=repeat)
        save_npz(tmp_path / f"rep{repeat}.npz", **datasets[repeat].to_arrays())
    rng = np.random.default_rng(0)
    runs, expected = [], []
    for model, noise in (("good", 0.1), ("bad", 10.0)):
        for repeat, data in datasets.items():
            predictions = {
                "bag_score": data.u_test + noise * rng.standard_normal(data.u_test.shape),
                "instance_score": data.w_test.reshape(-1, 2) + noise * rng.standard_normal((40 * 6, 2)),
                "train_seconds": np.array(1.5),
                "predict_seconds": np.array(0.1),
            }
            path = tmp_path / f"{model}{repeat}.npz"
            save_npz(path, **predictions)
            runs.append((model, "default", repeat, tmp_path / f"rep{repeat}.npz", path))
            expected.append(evaluate(data, predictions, 0.1))
    long = evaluate_runs([r[:3] for r in runs], [r[3] for r in runs], [r[4] for r in runs], 0.1)
    assert len(long) == 4 * 2 and list(long.columns[:3]) == ["model", "scenario", "repeat"]
    for index, frame in enumerate(expected):
        row = long.iloc[2 * index : 2 * index + 2]
        assert (row["model"] == runs[index][0]).all() and (row["repeat"] == runs[index][2]).all()
        np.testing.assert_allclose(row["spearman"], frame["spearman"])
        np.testing.assert_allclose(row["instance_auc"], frame["instance_auc"])
    summary = summarise_runs(long).set_index("model")
    assert summary.loc["good", "spearman_mean"] > 0.9 > summary.loc["bad", "spearman_mean"]
    assert (summary["n_repeats"] == 2).all()

    save_npz(tmp_path / "old.npz", bag_score=np.zeros((40, 2)))
    with pytest.raises(ValueError, match=r"old\.npz.*instance_score.*rerun"):
        evaluate_runs([("old", "default", 0)], [tmp_path / "rep0.npz"], [tmp_path / "old.npz"], 0.1)


def _long_table(values: dict, repeats: int, outputs: int, scenario: str = "default"):
    """A long table (the shape ``evaluate_runs`` writes) from model -> (spearman, auc) arrays of repeats x outputs."""
    import pandas as pd

    rows = []
    for model, (rho, auc) in values.items():
        for r in range(repeats):
            for o in range(outputs):
                rows.append(
                    {
                        "model": model,
                        "scenario": scenario,
                        "repeat": r,
                        "output": o,
                        "spearman": rho[r][o],
                        "instance_auc": auc[r][o],
                    }
                )
    return pd.DataFrame(rows)


def test_paired_table_pairs_outputs_within_repeats_and_counts_where_the_reference_is_ahead():
    import pandas as pd

    from mixmil_workflow.studies.simulation import paired_markdown_table, paired_table

    ref_rho = np.array([[0.8, 0.6, 0.7], [0.5, 0.9, 0.4]])
    ref_auc = np.array([[0.9, 0.8, 0.7], [0.6, 0.9, 0.8]])
    other_rho = np.array([[0.7, 0.7, 0.5], [0.6, 0.6, 0.7]])
    nan = np.full((2, 3), np.nan)
    long = _long_table({"mixmil": (ref_rho, ref_auc), "glmm": (other_rho, nan)}, repeats=2, outputs=3)
    # Rows in another order must not change the pairing (it is on scenario, repeat and output).
    paired = paired_table(long.sample(frac=1.0, random_state=0), "mixmil").set_index("model")
    per_repeat = (ref_rho - other_rho).mean(axis=1)
    assert paired.loc["glmm", "unit"] == "repeat" and paired.loc["glmm", "n_units"] == 2
    assert np.isclose(paired.loc["glmm", "spearman_difference_mean"], per_repeat.mean())
    assert np.isclose(paired.loc["glmm", "spearman_difference_se"], mean_and_se(per_repeat)[1])
    assert paired.loc["glmm", "spearman_reference_ahead"] == int((per_repeat > 0).sum()) == 1
    assert np.isnan(paired.loc["glmm", "instance_auc_difference_mean"])
    assert paired.loc["glmm", "instance_auc_n_paired"] == 0
    assert "mixmil" not in paired.index

    # One repeat: the units are the outputs, and AUC pairs where both models have instance scores.
    one = _long_table(
        {"mixmil": (ref_rho[:1], ref_auc[:1]), "mean_field": (other_rho[:1], np.array([[0.95, 0.7, np.nan]]))},
        repeats=1,
        outputs=3,
    )
    paired = paired_table(one, "mixmil").set_index("model")
    assert paired.loc["mean_field", "unit"] == "output" and paired.loc["mean_field", "n_units"] == 3
    assert np.isclose(paired.loc["mean_field", "spearman_difference_mean"], (ref_rho[0] - other_rho[0]).mean())
    assert paired.loc["mean_field", "spearman_reference_ahead"] == 2
    assert np.isclose(paired.loc["mean_field", "instance_auc_difference_mean"], np.mean([0.9 - 0.95, 0.8 - 0.7]))
    assert paired.loc["mean_field", "instance_auc_n_paired"] == 2
    assert paired.loc["mean_field", "instance_auc_reference_ahead"] == 1
    markdown = paired_markdown_table(paired.reset_index(), "mixmil")
    assert markdown.loc[0, "mixmil ahead (Spearman)"] == "2 / 3 outputs"
    assert markdown.loc[0, "mixmil ahead (AUC)"] == "1 / 2 outputs"

    # A model fitted on other scenarios only (e.g. the instance-level trees) pairs only where both ran.
    extra = _long_table({"rf_instance": (other_rho, nan)}, repeats=2, outputs=3, scenario="n_train-250")
    paired = paired_table(pd.concat([long, extra]), "mixmil")
    assert list(paired["model"]) == ["glmm"]


def test_reference_model_defaults_to_the_first_mixmil_and_names_a_bad_choice():
    import pytest

    from mixmil_workflow.studies.simulation import reference_model

    models = {"glmm": {"type": "glmm"}, "mf": {"type": "mixmil"}, "fr": {"type": "mixmil"}}
    assert reference_model({"models": ["glmm", "mf", "fr"]}, models) == "mf"
    assert reference_model({"models": ["glmm"]}, models) == "glmm"
    assert reference_model({"models": ["glmm", "fr"], "reference_model": "glmm"}, models) == "glmm"
    with pytest.raises(ValueError, match=r"simulation.reference_model is 'abmil'.*not in simulation.models"):
        reference_model({"models": ["glmm", "fr"], "reference_model": "abmil"}, models)
