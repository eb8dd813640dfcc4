"""Genetic labels as MIL tasks: training data, multi-output folds, Fig. 3 / Table E.2 statistics, Fig. E.3
cell states and Table 1 costs (unit level; the demo run covers the rules end to end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.genetics.cell_states import (
    choose_examples,
    odds_ratios,
    ranked_cells,
    subset_means,
    top_bottom_predictions,
    weights_by_label,
)
from mixmil_workflow.genetics.results import planted_recovery, spearman_matrix, stacked_spearman, table_e2, wins
from mixmil_workflow.genetics.training import (
    genetics_bag_table,
    genetics_covariates,
    genetics_models,
    negative_controls,
    trained_variants,
)
from mixmil_workflow.own_bags.input import DatasetError, LabelSpec
from mixmil_workflow.own_bags.study import fit_fold_outputs

MODELS = {
    "mixmil": {"type": "mixmil", "n_epochs": 60, "batch_size": 32},
    "glmm": {"type": "glmm"},
    "abmil": {"type": "abmil", "n_epochs": 5, "batch_size": 16, "hidden_dim": 8},
    "rf": {"type": "random_forest"},
}


def planted_bags(n_bags=120, size=12, q=6, seed=0):
    """Bags whose dosage (0/1/2) raises the share of cells in a state marked by feature 0, plus a
    null dosage; covariates: one informative column, one noise column."""
    rng = np.random.default_rng(seed)
    dosage = rng.binomial(2, 0.4, n_bags)
    null = rng.binomial(2, 0.4, n_bags)
    x = rng.normal(size=(n_bags * size, q)).astype(np.float32)
    state = rng.random(n_bags * size) < np.repeat(0.05 + 0.25 * dosage, size)
    x[state, 0] += 3.0
    offsets = torch.arange(0, n_bags * size + 1, size)
    table = pd.DataFrame(
        {
            "donor_id": [f"d{k}" for k in range(n_bags)],
            "cov_a": rng.normal(size=n_bags),
            "cov_b": rng.normal(size=n_bags),
            "planted": dosage,
            "null": null,
            "fold": np.arange(n_bags) % 4,
            "n_instances": size,
        }
    )
    return Bags(torch.from_numpy(x), offsets), table, state


def test_negative_controls_come_from_the_failed_variants_seeded():
    screen = pd.DataFrame({"rsid": [f"rs{k}" for k in range(10)], "spearman": np.linspace(-0.2, 0.4, 10)})
    failed = set(screen.loc[screen["spearman"] <= 0.15, "rsid"])
    picked = negative_controls(screen, 0.15, 3, seed=1)
    assert len(picked) == 3 and set(picked) <= failed and picked == sorted(picked)
    assert picked == negative_controls(screen, 0.15, 3, seed=1)
    assert len(negative_controls(screen, 0.15, 50, seed=1)) == len(failed)
    assert negative_controls(screen, 0.15, 0, seed=1) == []


def test_trained_variants_keep_label_order_and_refuse_a_variant_in_both_roles():
    labels = pd.DataFrame({"rsid": ["rs2", "rs1"]})
    out = trained_variants(labels, ["rs9"])
    assert list(out["rsid"]) == ["rs2", "rs1", "rs9"]
    assert list(out["role"]) == ["label", "label", "negative_control"]
    with pytest.raises(ValueError, match="both label and control"):
        trained_variants(labels, ["rs1"])


def test_bag_table_joins_dosages_by_vcf_sample_and_names_missing_donors():
    donors = pd.DataFrame({"donor_id": ["1_2", "3_4"], "sample": ["OneK1K_2", "OneK1K_4"], "sex": [0, 1]})
    dosages = pd.DataFrame({"rs1": [2, 0]}, index=pd.Index(["OneK1K_4", "OneK1K_2"], name="sample"))
    table = genetics_bag_table(donors, dosages, ["rs1"])
    assert list(table["rs1"]) == [0, 2]
    with pytest.raises(ValueError, match="OneK1K_4"):
        genetics_bag_table(donors, dosages.drop(index="OneK1K_4"), ["rs1"])
    with pytest.raises(ValueError, match="rs7"):
        genetics_bag_table(donors, dosages, ["rs7"])


def test_genetics_models_need_a_mixmil_and_known_names():
    section = {"activate": True, "models": ["glmm", "abmil"]}
    with pytest.raises(ValueError, match="genetics.models has no model of type 'mixmil'"):
        genetics_models(section, MODELS)
    with pytest.raises(ValueError, match="genetics.models lists 'nope'"):
        genetics_models({"activate": True, "models": ["mixmil", "nope"]}, MODELS)
    with pytest.raises(ValueError, match="genetics.models lists 'rf' of type 'random_forest'"):
        genetics_models({"activate": True, "models": ["mixmil", "rf"]}, MODELS)
    assert genetics_models({"activate": True, "models": ["abmil", "mixmil"]}, MODELS) == (["abmil", "mixmil"], "mixmil")
    assert genetics_models({"activate": False, "models": ["mixmil"]}, MODELS) == ([], None)
    assert genetics_covariates(2) == ["sex", "age", "PC1", "PC2"]


@pytest.mark.parametrize("model", ["mixmil", "abmil"])
def test_one_fold_fits_every_label_as_an_output(model):
    bags, table, _ = planted_bags()
    labels = [LabelSpec("planted", "binomial", 2), LabelSpec("null", "binomial", 2)]
    predictions, weights = fit_fold_outputs(
        MODELS[model], bags, table, labels, ["cov_a", "cov_b"], fold=1, seed=0, id_column="donor_id"
    )
    held_out = table.loc[table["fold"] == 1, "donor_id"]
    assert len(predictions) == 2 * len(held_out)
    assert list(predictions.groupby("label", sort=False).size().index) == ["planted", "null"]
    assert set(predictions["bag"]) == set(held_out) and (predictions["fold"] == 1).all()
    assert weights["weights"].shape == (len(held_out) * 12, 2) and list(weights["labels"]) == ["planted", "null"]
    assert list(weights["bags"]) == list(held_out) and weights["offsets"][-1] == len(held_out) * 12


def test_one_fold_refuses_mixed_or_categorical_likelihoods():
    bags, table, _ = planted_bags(n_bags=20)
    mixed = [LabelSpec("planted", "binomial", 2), LabelSpec("null", "gaussian")]
    with pytest.raises(DatasetError, match="one non-categorical likelihood"):
        fit_fold_outputs(MODELS["glmm"], bags, table, mixed, [], 0, 0, "donor_id")
    with pytest.raises(DatasetError, match="one non-categorical likelihood"):
        fit_fold_outputs(MODELS["glmm"], bags, table, [LabelSpec("planted", "categorical")], [], 0, 0, "donor_id")


def test_binomial_test_of_wins_reproduces_the_papers_p_values():
    # Fig. 3: 27/28 -> P < 2e-7, 25/28 -> P < 2e-5, 24/28 -> P < 9e-5 (one-sided)
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.4, 28)
    matrix = pd.DataFrame({"mixmil": base + 0.05})
    for name, losses in (("abmil", 1), ("dsmil", 3), ("bayes_mil", 4)):
        other = base.copy()
        other[:losses] += 0.1
        matrix[name] = other
    counts = wins(matrix, "mixmil", ["abmil", "dsmil", "bayes_mil"]).set_index("baseline")
    assert list(counts["reference_better"]) == [27, 25, 24]
    assert counts.loc["abmil", "binomial_p"] < 2e-7 < 2 * counts.loc["abmil", "binomial_p"]
    assert counts.loc["dsmil", "binomial_p"] < 2e-5 and counts.loc["bayes_mil", "binomial_p"] < 9e-5


def test_table_e2_is_mean_sd_and_a_one_sided_paired_t_test():
    from scipy.stats import ttest_rel

    matrix = pd.DataFrame({"mixmil": [0.3, 0.5, 0.2, 0.4], "abmil": [0.2, 0.45, 0.25, 0.3]})
    table = table_e2(matrix, "mixmil", {"mixmil": "MixMIL", "abmil": "ABMIL"}).set_index("model")
    assert table.loc["abmil", "spearman_mean"] == pytest.approx(0.3)
    assert table.loc["abmil", "spearman_sd"] == pytest.approx(np.std([0.2, 0.45, 0.25, 0.3], ddof=1))
    two_sided = ttest_rel(matrix["mixmil"], matrix["abmil"]).pvalue
    assert table.loc["abmil", "improvement_ttest_p"] == pytest.approx(two_sided / 2)
    assert np.isnan(table.loc["mixmil", "improvement_ttest_p"])


def test_stacked_spearman_scores_concatenated_folds_and_refuses_a_bag_twice():
    predictions = pd.DataFrame(
        {
            "bag": ["a", "b", "c", "d"] * 2,
            "label": ["rs1"] * 4 + ["rs2"] * 4,
            "model": "m",
            "y": [0, 1, 2, 2, 0, 0, 1, 2],
            "score": [0.1, 0.2, 0.3, 0.4, 1.0, 1.0, 1.0, 1.0],
        }
    )
    out = stacked_spearman(predictions).set_index("label")
    assert out.loc["rs1", "spearman"] == pytest.approx(np.corrcoef([0, 1, 2.5, 2.5], [1, 2, 3, 4])[0, 1])
    assert out.loc["rs2", "spearman"] == 0.0  # constant prediction: no ranking, counts as a loss
    with pytest.raises(ValueError, match="more than one fold"):
        stacked_spearman(pd.concat([predictions, predictions.iloc[:1]]))
    with pytest.raises(ValueError, match="no out-of-fold predictions"):
        spearman_matrix(out.reset_index(), ["rs1"], ["m", "other"])


def test_planted_recovery_counts_a_proxy_of_a_planted_variant_as_planted():
    truth = pd.DataFrame(
        {
            "rsid": ["rs1", "rs2", "rs3", "rs4"],
            "role": ["planted", "proxy", "no_effect", "proxy"],
            "lead": ["", "rs1", "", "rs3"],
        }
    )
    variants = pd.DataFrame({"rsid": ["rs2", "rs3", "rs4"], "role": ["label", "label", "negative_control"]})
    spearman = pd.DataFrame({"label": ["rs2", "rs3", "rs4"], "model": "m", "spearman": [0.5, 0.1, 0.0]})
    out = planted_recovery(spearman, variants, truth).set_index("rsid")
    assert list(out["simulated"]) == ["planted", "not_planted", "not_planted"] and out.loc["rs2", "m"] == 0.5
    with pytest.raises(ValueError, match="rs9"):
        planted_recovery(spearman, pd.DataFrame({"rsid": ["rs9"], "role": ["label"]}), truth)


def test_ranked_cells_take_each_bags_own_top_and_bottom_share():
    weights = np.array([0.1, 0.5, 0.4, 0.9, 0.05, 0.05, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1])
    top, bottom = ranked_cells(weights, np.array([3, 9]), fraction=0.2)
    assert list(np.flatnonzero(top)) == [1, 3, 6]  # 1 of 3 cells, then 2 of 9 cells
    assert list(np.flatnonzero(bottom)) == [0, 4, 5]
    assert not (top & bottom).any()
    np.testing.assert_allclose(subset_means(np.arange(12.0)[:, None], np.array([3, 9]), top)[:, 0], [1, 4.5])


def test_odds_ratios_find_the_enriched_cell_type():
    group = np.array(["CD4"] * 60 + ["CD8"] * 40)
    top = np.zeros(100, dtype=bool)
    top[:10] = True  # all top cells are CD4
    top[60] = True
    out = odds_ratios(top, group).set_index("cell_type")
    assert out.loc["CD4", "top_cells"] == 10 and out.loc["CD8", "top_cells"] == 1
    assert out.loc["CD4", "odds_ratio"] == pytest.approx((10 / 50) / (1 / 39))
    assert out.loc["CD4", "ci_low"] < out.loc["CD4", "odds_ratio"] < out.loc["CD4", "ci_high"]
    assert out.loc["CD8", "odds_ratio"] == pytest.approx(1 / out.loc["CD4", "odds_ratio"])


def test_top_cells_predict_a_planted_dosage_better_than_the_bottom_cells():
    from scipy.stats import spearmanr

    bags, table, state = planted_bags(n_bags=160, size=20, seed=3)
    x, sizes = bags.x.numpy(), table["n_instances"].to_numpy()
    weights = x[:, 0] + 0.1 * np.random.default_rng(0).normal(size=len(x))  # a weight that sees the state
    covariates = table[["cov_a", "cov_b"]].to_numpy(float)
    y = table["planted"].to_numpy(float)
    out, top = top_bottom_predictions(x, sizes, weights, y, covariates, table["fold"].to_numpy(), 0.1, seed=0)
    assert state[top].mean() > 0.7 > state.mean()
    assert spearmanr(out["top"], y).statistic > spearmanr(out["bottom"], y).statistic + 0.2


def test_weights_of_the_held_out_folds_cover_every_donor(tmp_path):
    table = pd.DataFrame({"donor_id": ["a", "b", "c"], "n_instances": [2, 1, 3]})
    files = []
    for k, (bags, offsets, w) in enumerate(
        [(["a", "c"], [0, 2, 5], np.arange(10.0).reshape(5, 2)), (["b"], [0, 1], np.array([[7.0, 8.0]]))]
    ):
        path = tmp_path / f"fold{k}.npz"
        np.savez(path, bags=np.array(bags), offsets=np.array(offsets), weights=w, labels=np.array(["rs1", "rs2"]))
        files.append(str(path))
    out = weights_by_label(files, table, 6)
    assert list(out.columns) == ["rs1", "rs2"]
    assert list(out["rs1"]) == [0, 2, 7, 4, 6, 8]
    with pytest.raises(ValueError, match="a fold's weights are missing"):
        weights_by_label(files[:1], table, 6)


def test_examples_are_the_largest_gains_over_the_best_baseline():
    matrix = pd.DataFrame(
        {"mixmil": [0.5, 0.3, 0.6, -0.1], "abmil": [0.1, 0.3, 0.5, -0.5], "dsmil": [0.4, 0.0, 0.2, -0.5]},
        index=["rs1", "rs2", "rs3", "rs4"],
    )
    assert choose_examples(matrix, "mixmil", ["abmil", "dsmil"], 2) == ["rs1", "rs3"]
    assert choose_examples(matrix, "mixmil", [], 5) == ["rs3", "rs1", "rs2"]


def test_costs_on_bags_with_covariates_count_the_fixed_effects():
    from mixmil_workflow.studies.costs import measure_bag_costs

    bags, table, _ = planted_bags(n_bags=80)
    train, test = np.flatnonzero(table["fold"] != 0), np.flatnonzero(table["fold"] == 0)
    cov = table[["cov_a", "cov_b"]].to_numpy(float)
    y = table[["planted"]].to_numpy(float)
    row = measure_bag_costs(
        "mixmil", MODELS["mixmil"], bags.subset(train), y[train], bags.subset(test), seed=0, n_epochs=2,
        n_timings=2, train_covariates=cov[train], test_covariates=cov[test],
    )  # fmt: skip
    q = bags.n_features
    # alpha (intercept + 2 covariates) + Q-dimensional beta and gamma means ... as counted by MixMIL
    assert row["n_covariates"] == 2 and row["n_outputs"] == 1
    assert row["variational_parameters"] == 2 * q + 2 * q * (2 * q + 1) // 2
    assert row["likelihood_parameters"] == 3 + 2 * q


def test_screen_chunks_cover_the_universe_and_do_not_change_the_result():
    from mixmil_workflow.genetics.labels import glmm_screen, screen_chunk_columns

    blocks = [screen_chunk_columns(10, k, 3) for k in range(3)]
    assert blocks == [(0, 3), (3, 7), (7, 10)]
    few = [screen_chunk_columns(2, k, 4) for k in range(4)]  # more chunks than variants: some empty
    assert few[0][0] == 0 and few[-1][1] == 2 and all(a[1] == b[0] for a, b in zip(few[:-1], few[1:], strict=True))
    with pytest.raises(ValueError, match="chunk 3 is not in 0..2"):
        screen_chunk_columns(10, 3, 3)
    rng = np.random.default_rng(0)
    means, covariates = rng.normal(size=(60, 4)), rng.normal(size=(60, 2))
    dosages = pd.DataFrame(rng.binomial(2, 0.4, size=(60, 3)), columns=["rs1", "rs2", "rs3"])
    dosages["rs2"] = np.clip(np.round(means[:, 0] + 1), 0, 2).astype(int)  # predictable from the means
    whole = glmm_screen(means, dosages, covariates, n_folds=3, seed=5)
    parts = pd.concat(
        [glmm_screen(means, dosages.iloc[:, a:b], covariates, 3, 5, first=a) for a, b in ((0, 1), (1, 3))],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, parts)
    assert whole.set_index("rsid").loc["rs2", "spearman"] > 0.5
