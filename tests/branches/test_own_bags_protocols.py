"""Bring your own bags: protocols (repeated, stratified, grouped, nested), preprocessing, class weights,
metrics, and the fits' failure modes, on small data in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.own_bags.crossval import FitSettings, balanced_resample, fit_folds
from mixmil_workflow.own_bags.input import DatasetError, LabelSpec
from mixmil_workflow.own_bags.metrics import fold_metrics, score_predictions, summarise
from mixmil_workflow.own_bags.preprocess import Preprocessing, fit_preprocessing
from mixmil_workflow.own_bags.protocol import assign_folds, check_classes_in_training, kfold, strata

KFOLD = {"kind": "kfold", "n_folds": 5, "n_repeats": 3}


def toy_bags(n_bags=60, q=4, seed=0, signal=1.5):
    """Bags whose first feature's bag mean drives the labels (learnable by every model)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 8, n_bags)
    x = rng.standard_normal((sizes.sum(), q)).astype(np.float32)
    bags = Bags(torch.from_numpy(x), torch.as_tensor(np.r_[0, np.cumsum(sizes)]))
    score = signal * bags.mean_pool().numpy()[:, 0] * np.sqrt(sizes) + 0.3 * rng.standard_normal(n_bags)
    return bags, score


def prepared_table(labels: dict, protocol: dict, seeds, stratify_label=None, likelihood="bernoulli"):
    table = pd.DataFrame({"bag": [f"{k:03d}" for k in range(len(next(iter(labels.values()))))], **labels})
    by = strata(table[stratify_label], likelihood) if stratify_label else None
    return table.assign(**assign_folds(table, protocol, seeds, by))


def test_repeats_draw_their_own_stratified_folds():
    y = np.r_[np.ones(12), np.zeros(48)].astype(int)  # 20% positives
    table = prepared_table({"y": y}, KFOLD, seeds=[1, 2, 3], stratify_label="y")
    columns = [f"fold_r{r}" for r in range(3)]
    assert columns == [c for c in table.columns if c.startswith("fold_")]
    for column in columns:
        assert sorted(np.bincount(table[column])) == [12] * 5
        assert (table.groupby(column)["y"].sum() == 12 // 5).sum() + (table.groupby(column)["y"].sum() > 2).sum() == 5
        assert table.groupby(column)["y"].sum().min() >= 2  # every fold holds positives (so its AUC is defined)
    assert not np.array_equal(table["fold_r0"], table["fold_r1"])  # each repeat its own assignment
    again = prepared_table({"y": y}, KFOLD, seeds=[1, 2, 3], stratify_label="y")
    pd.testing.assert_frame_equal(table, again)


def test_numeric_labels_are_stratified_by_quantile_and_groups_stay_together():
    y = np.arange(50, dtype=float)
    bins = strata(pd.Series(y), "gaussian")
    assert len(set(bins)) == 5
    folds = kfold(50, 5, seed=0, stratify_by=bins)
    for k in range(5):  # each fold spans the label's range: two bags from each quintile
        assert np.unique(bins[folds == k], return_counts=True)[1].tolist() == [2] * 5
    groups = np.repeat(np.arange(10), 5)
    grouped = kfold(50, 5, seed=3, groups=groups, stratify_by=bins)
    assert all(len(set(grouped[groups == g])) == 1 for g in range(10))
    protocol = {"kind": "groups", "n_folds": 4, "n_repeats": 1, "group_column": "pool"}
    with pytest.raises(DatasetError, match="4-fold cross-validation needs at least 4 groups; found 3"):
        assign_folds(pd.DataFrame({"pool": list("aabbcc")}), protocol, [0])


def test_a_class_without_training_bags_in_some_fit_is_refused_before_training():
    codes = np.array([0, 0, 0, 1, 1, 1, 2])  # class 2: one bag, absent from training when it is held out
    folds = {"fold_r0": np.array([0, 1, 2, 0, 1, 2, 0])}
    with pytest.raises(DatasetError, match=r"class\(es\) \['rare'\] have no training bags when fold 0"):
        check_classes_in_training(folds, np.array(["a", "b", "rare"]), codes, "moa", "bag table t.tsv")


def test_preprocessing_learns_from_training_instances_only(capsys):
    rng = np.random.default_rng(0)
    train = np.c_[rng.normal(100, 10, 500), np.full(500, 3.0), rng.normal(0, 1000, 500)].astype(np.float32)
    fitted = fit_preprocessing(Preprocessing(standardize=True, pca=0), train, seed=0)
    assert "dropped 1 feature(s) constant over the training instances: 1" in capsys.readouterr().out
    z = fitted.transform(train)
    assert z.shape == (500, 2)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    test = np.full((3, 3), 100.0, np.float32)  # held-out values are scaled with the training statistics
    np.testing.assert_allclose(fitted.transform(test)[:, 0], (100 - train[:, 0].mean()) / train[:, 0].std(), rtol=1e-4)
    pca = fit_preprocessing(Preprocessing(standardize=True, pca=1), train, seed=0, log=lambda m: None)
    assert pca.transform(test).shape == (3, 1)
    assert Preprocessing.from_config({"standardize": "auto", "pca": 0, "drop_constant": True}, "X").standardize
    assert not Preprocessing.from_config({"standardize": "auto", "pca": 0, "drop_constant": True}, "X_scvi").standardize
    with pytest.raises(ValueError, match="every feature is constant"):
        fit_preprocessing(Preprocessing(standardize=False), np.ones((5, 2), np.float32), seed=0)


def test_balanced_resampling_gives_every_class_the_same_weight():
    y = np.r_[np.zeros(30), np.ones(7), np.full(3, 2)]
    index = balanced_resample(y, seed=0)
    assert np.bincount(y[index].astype(int)).tolist() == [30, 30, 30]
    assert set(index[y[index] == 1]) == set(np.flatnonzero(y == 1))  # every minority bag is used
    np.testing.assert_array_equal(index, balanced_resample(y, seed=0))


def test_metrics_per_likelihood_and_their_standard_errors():
    frame = pd.DataFrame({"y": [0, 0, 1, 1], "probability": [0.1, 0.6, 0.4, 0.9]})
    scores = score_predictions(frame, "bernoulli")
    assert scores["auc"] == 0.75 and scores["accuracy"] == 0.5 and scores["balanced_accuracy"] == 0.5
    assert scores["f1"] == 0.5 and scores["log_loss"] == pytest.approx(np.mean(-np.log([0.9, 0.4, 0.4, 0.9])))
    categorical = pd.DataFrame({"y": [0, 1, 2, 2], "prob_a": [0.8, 0.1, 0.1, 0.2], "prob_b": [0.1, 0.8, 0.1, 0.5],
                                "prob_c": [0.1, 0.1, 0.8, 0.3]})  # fmt: skip
    scores = score_predictions(categorical, "categorical")
    assert scores["accuracy"] == 0.75 and scores["auc_macro"] == pytest.approx(np.mean([1.0, 1.0, 1.0]))
    numeric = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "expected": [1.1, 1.9, 3.2, 3.9]})
    scores = score_predictions(numeric, "gaussian")
    assert scores["spearman"] == 1.0 and scores["r2"] == pytest.approx(1 - 0.07 / 5)
    # one repeat: s.e. over its folds; several: over the repeats' pooled values
    rng = np.random.default_rng(0)
    long = pd.DataFrame({"repeat": np.repeat([0, 1], 40), "fold": np.tile(np.repeat([0, 1, 2, 3], 10), 2),
                         "y": rng.normal(size=80)})  # fmt: skip
    long["expected"] = long["y"] + rng.normal(size=80)
    per_fold = fold_metrics(long, "gaussian")
    assert len(per_fold) == 8 + 2 and (per_fold["fold"] == "all").sum() == 2
    summary = summarise(per_fold, "gaussian")
    pooled = per_fold.loc[per_fold["fold"] == "all", "spearman"]
    assert summary["se_over"] == "repeats" and summary["spearman"] == pytest.approx(pooled.mean())
    assert summary["spearman_se"] == pytest.approx(pooled.std(ddof=1) / np.sqrt(2))
    single = summarise(fold_metrics(long[long["repeat"] == 0], "gaussian"), "gaussian")
    assert single["se_over"] == "folds" and single["n_folds"] == 4 and np.isfinite(single["spearman_se"])


def settings(label: LabelSpec, **overrides) -> FitSettings:
    base = {"label": label, "covariates": [], "preprocessing": Preprocessing(standardize=True), "id_column": "bag"}
    return FitSettings(**(base | overrides))


def test_a_two_class_categorical_label_trains_mixmil_and_the_glmm():
    """Once a crash: the GLMM start gave one output for two classes where MixMIL expects two."""
    bags, score = toy_bags()
    classes = np.where(score > 0, "high", "low")
    table = prepared_table({"state": classes}, {**KFOLD, "n_repeats": 1, "n_folds": 3}, [0], "state", "categorical")
    label = LabelSpec("state", "categorical")
    for spec in ({"type": "glmm"}, {"type": "mixmil", "n_epochs": 20, "progress": False, "n_predictive_samples": 8}):
        predictions, instance, timings, search = fit_folds(spec, bags, table, settings(label), [(0, 0), (0, 1), (0, 2)],
                                                           [1, 2, 3], log=lambda m: None)  # fmt: skip
        assert {"prob_high", "prob_low", "predicted"} <= set(predictions.columns) and len(predictions) == 60
        np.testing.assert_allclose(predictions[["prob_high", "prob_low"]].sum(1), 1, rtol=1e-5)
        assert score_predictions(predictions, "categorical")["auc_macro"] > 0.8
        assert len(timings) == 3 and search.empty


def test_missing_labels_are_left_out_by_models_that_can_and_refused_by_the_others():
    bags, score = toy_bags()
    y = (score > 0).astype(float)
    y[[3, 10, 20]] = np.nan
    table = prepared_table({"y": y}, {**KFOLD, "n_repeats": 1, "n_folds": 3}, [0], "y")
    label = LabelSpec("y", "bernoulli")
    spec = {"type": "glmm", "missing_labels": True}
    predictions, *_ = fit_folds(spec, bags, table, settings(label), [(0, 0), (0, 1), (0, 2)], [1, 2, 3], log=print)
    assert predictions["y"].isna().sum() == 3  # predicted, never scored
    assert score_predictions(predictions, "bernoulli")["auc"] > 0.8
    with pytest.raises(DatasetError, match=r"have no label, and model type 'abmil' without missing_labels: true"):
        fit_folds({"type": "abmil", "n_epochs": 1}, bags, table, settings(label), [(0, 0)], [1])


def test_nested_cv_tunes_inside_the_training_folds_and_records_its_choices():
    bags, score = toy_bags(n_bags=45)
    y = (score > 0).astype(int)
    table = prepared_table({"y": y}, {**KFOLD, "n_repeats": 1, "n_folds": 3}, [0], "y")
    label = LabelSpec("y", "bernoulli")
    spec = {"type": "abmil", "n_epochs": 15, "batch_size": 8, "progress": False}
    tuned = settings(label, search={"lr": [1e-6, 5e-3]}, inner_folds=2)
    predictions, _, _, search = fit_folds(spec, bags, table, tuned, [(0, 0), (0, 1)], [5, 6], log=lambda m: None)
    assert len(search) == 2 * 2 and search.groupby("fold")["chosen"].sum().tolist() == [1, 1]
    assert set(search["hyperparameters"]) == {'{"lr": 1e-06}', '{"lr": 0.005}'}
    assert (search["inner_metric"] == "auc").all()
    chosen = search[search["chosen"]]
    best = search.loc[search.groupby("fold")["inner_score"].idxmax()]
    assert chosen["candidate"].tolist() == best["candidate"].tolist()
    # the outer held-out bags took no part in the search: the search's scores do not change when they do
    changed = table.copy()
    held = changed["fold_r0"] == 0
    changed.loc[held, "y"] = 1 - changed.loc[held, "y"]
    _, _, _, search_changed = fit_folds(spec, bags, changed, tuned, [(0, 0)], [5], log=lambda m: None)
    np.testing.assert_array_equal(search_changed["inner_score"], search[search["fold"] == 0]["inner_score"])


def test_one_job_or_one_per_fold_give_the_same_numbers():
    bags, score = toy_bags(n_bags=30)
    table = prepared_table({"y": score}, {**KFOLD, "n_repeats": 2, "n_folds": 3}, [0, 1], "y", "gaussian")
    label = LabelSpec("y", "gaussian")
    spec = {"type": "abmil", "n_epochs": 3, "progress": False}
    folds = [(r, k) for r in range(2) for k in range(3)]
    seeds = [11, 12, 13, 14, 15, 16]
    together, weights, *_ = fit_folds(spec, bags, table, settings(label), folds, seeds, log=lambda m: None)
    apart = pd.concat(
        [
            fit_folds(spec, bags, table, settings(label), [f], [s], log=lambda m: None)[0]
            for f, s in zip(folds, seeds, strict=True)
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together, apart, check_exact=True)
    assert weights["weights"].shape == (2 * bags.n_instances, 1) and len(weights["bags"]) == 60
