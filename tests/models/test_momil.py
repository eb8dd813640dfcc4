"""MoMIL: shared projector + one MIL head per task, trained on sparse labels with missing entries masked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.likelihoods import LabelError
from mixmil_workflow.models.momil import MoMIL


def _tasks(n_bags=160, n_inst=12, q=8, n_tasks=3, missing=0.0, seed=0):
    """Task t is positive when the bag holds instances shifted along feature t (a few per bag)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_bags, n_inst, q)).astype(np.float32)
    y = rng.integers(0, 2, size=(n_bags, n_tasks)).astype(float)
    for b in range(n_bags):
        for t in range(n_tasks):
            if y[b, t]:
                x[b, rng.choice(n_inst, 3, replace=False), t] += 3.0
    y_obs = y.copy()
    y_obs[rng.uniform(size=y.shape) < missing] = np.nan
    return Bags.from_dense(x), y, y_obs


# the paper's schedule (warm-up, AdamW, cosine, early stopping on validation AUC), shortened for toy data
FAST = dict(n_epochs=60, warmup_epochs=5, patience=20, dropout=0.25, batch_size=16, projector_dim=32, hidden_dim=16,
            lr=5e-3, progress=False, device="cpu")  # fmt: skip


@pytest.mark.parametrize("head", ["dsmil", "abmil"])
def test_shapes_scores_and_a_fit_that_beats_chance_with_sparse_labels(head):
    from sklearn.metrics import roc_auc_score

    bags, y, y_obs = _tasks(missing=0.7)
    train, test = np.arange(120), np.arange(120, 160)
    model = MoMIL(head=head, seed=0, **FAST).fit(bags.subset(train), y_obs[train])
    prediction = model.predict(bags.subset(test))
    assert prediction.mean.shape == (40, 3) and ((prediction.mean > 0) & (prediction.mean < 1)).all()
    scores = model.instance_scores(bags.subset(test))
    assert scores.shape == (40 * 12, 3)
    np.testing.assert_allclose(scores.reshape(40, 12, 3).sum(1), 1.0, rtol=1e-5)  # attention per bag and task
    aucs = [roc_auc_score(y[test, t], prediction.mean[:, t]) for t in range(3)]
    assert min(aucs) > 0.75, aucs


def test_the_paper_schedule_warms_up_anneals_and_stops_on_the_validation_auc():
    """AdamW; a linear warm-up then cosine annealing; early stopping ``patience`` epochs after the best
    validation AUC, whose weights are kept; the DSMIL reference's schedule stays an option."""
    bags, _, y_obs = _tasks(n_bags=80, missing=0.5)
    model = MoMIL(seed=0, **(FAST | {"n_epochs": 40, "warmup_epochs": 10, "patience": 3, "lr": 0.05}))
    optimiser = model.make_optimiser([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(optimiser, torch.optim.AdamW) and optimiser.defaults["weight_decay"] == 5e-4
    scheduler = model.make_scheduler(optimiser)
    rates = []
    for _ in range(40):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    assert np.all(np.diff(rates[:10]) > 0) and rates[9] < 0.05 <= rates[10] * (1 + 1e-9)  # warm-up to the peak
    assert np.all(np.diff(rates[10:]) < 0) and rates[-1] > model.config.min_lr  # then cosine, down to the floor
    model.fit(bags, y_obs)
    assert len(model.history) == model.best_epoch + 1 + 3 < 40  # stopped 3 epochs after the best
    # the best epoch is chosen from the end of the warm-up on (the learning rate is still rising before)
    assert model.best_epoch == 9 + model.validation_history[9:].argmax()
    old = MoMIL(seed=0, **(FAST | {"schedule": "dsmil", "n_epochs": 5}))
    assert isinstance(old.make_optimiser([torch.nn.Parameter(torch.zeros(1))]), torch.optim.Adam)
    assert len(old.fit(bags, y_obs).history) == 5 and old.best_epoch == -1
    with pytest.raises(ValueError, match="schedule must be one of"):
        MoMIL(schedule="adam")
    with pytest.raises(ValueError, match="leaves no training or no validation bags"):
        MoMIL(**FAST).fit(bags.subset(torch.arange(2)), np.ones((2, 3)))


def test_hidden_sizes_are_searchable_in_the_sweep():
    from mixmil_workflow.models.registry import model_type
    from mixmil_workflow.studies.sweep import sweep_combinations

    assert {"projector_dim", "hidden_dim", "lr", "dropout"} <= set(model_type("momil").sweepable)
    grid = {"momil": {"projector_dim": [64, 128], "hidden_dim": [32, 64, 128], "lr": [1e-4, 5e-5, 1e-5]}}
    combos = sweep_combinations({"models": ["momil"], "grid": grid}, {"momil": {"type": "momil"}})
    assert len(combos["momil"]) == 18 and {c["hidden_dim"] for c in combos["momil"]} == {32, 64, 128}


def test_missing_labels_are_masked_not_negatives():
    model = MoMIL(**FAST)
    logits = torch.tensor([[[2.0], [-1.0]], [[0.5], [3.0]]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    observed = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 0.5, 3.0]), torch.tensor([1.0, 0.0, 1.0])
    )
    assert model.masked_bce(logits, y).item() == pytest.approx(observed.item())
    # whatever a missing label would be, the loss is the same
    y_neg = y.clone()
    y_neg[0, 1] = 0.0
    assert model.masked_bce(logits, y_neg).item() != pytest.approx(observed.item())


def test_a_task_observed_only_on_positives_is_not_pulled_to_zero():
    """Labels observed only where positive (the rest missing): read as negatives, the task's unlabelled
    bags would be predicted negative; masked, the model learns nothing against them."""
    bags, y, _ = _tasks(n_tasks=2, seed=1)
    sparse = y.copy()
    sparse[:, 1] = np.where(y[:, 1] == 1, 1.0, np.nan)
    sparse[np.flatnonzero(y[:, 1] == 1)[10:], 1] = np.nan  # only 10 positives observed
    model = MoMIL(seed=0, **FAST).fit(bags, sparse)
    assert model.predict(bags).mean[:, 1].mean() > 0.5
    imputed_negative = np.nan_to_num(sparse, nan=0.0)
    naive = MoMIL(seed=0, **FAST).fit(bags, imputed_negative)
    assert naive.predict(bags).mean[:, 1].mean() < 0.3


def test_seeded_permutation_invariant_and_saved(tmp_path):
    bags, _, y_obs = _tasks(n_bags=40, missing=0.5)
    a = MoMIL(seed=3, **(FAST | {"n_epochs": 3})).fit(bags, y_obs)
    b = MoMIL(seed=3, **(FAST | {"n_epochs": 3})).fit(bags, y_obs)
    np.testing.assert_array_equal(a.predict(bags).mean, b.predict(bags).mean)
    x = bags.x.clone().view(40, 12, -1)
    shuffled = Bags.from_dense(x[:, torch.randperm(12, generator=torch.Generator().manual_seed(0))])
    np.testing.assert_allclose(a.predict(shuffled).mean, a.predict(bags).mean, rtol=1e-5, atol=1e-6)
    a.save(tmp_path / "momil.pt")
    again = MoMIL.load(tmp_path / "momil.pt")
    np.testing.assert_allclose(again.predict(bags).mean, a.predict(bags).mean, rtol=1e-6)
    np.testing.assert_allclose(again.instance_scores(bags), a.instance_scores(bags), rtol=1e-6)


def test_bad_labels_name_the_problem():
    bags, _, y_obs = _tasks(n_bags=20)
    two = y_obs.copy()
    two[3, 1] = 2.0
    with pytest.raises(LabelError, match=r"integers in 0..1 or NaN \(missing\); found 2.0"):
        MoMIL(**FAST).fit(bags, two)
    empty = y_obs.copy()
    empty[:, 2] = np.nan
    with pytest.raises(LabelError, match=r"outputs \[2\] have no observed label"):
        MoMIL(**FAST).fit(bags, empty)
    with pytest.raises(ValueError, match="head must be one of"):
        MoMIL(head="gated", **FAST)


def test_imputation_thresholds_use_correct_validation_bags_and_stricter_secondary_levels():
    from mixmil_workflow.models.momil_tasks import imputation_thresholds, impute_labels, performance_selection

    rng = np.random.default_rng(0)
    probs = rng.uniform(size=(200, 2))
    labels = (probs > 0.5).astype(float)  # every bag correctly classified
    labels[:5, 0] = 1 - labels[:5, 0]  # five misclassified bags: left out of the percentiles
    labels[5:10, 1] = np.nan
    pos, neg = imputation_thresholds(probs, labels, secondary=np.array([False, True]), p=0.9, alpha=0.05)
    correct0 = (probs[:, 0] >= 0.5) == (labels[:, 0] == 1)
    assert pos[0] == pytest.approx(np.percentile(probs[correct0, 0], 90))
    assert neg[0] == pytest.approx(np.percentile(probs[correct0, 0], 10))
    kept1 = ~np.isnan(labels[:, 1])
    assert pos[1] == pytest.approx(np.percentile(probs[kept1, 1], 95))
    assert neg[1] == pytest.approx(np.percentile(probs[kept1, 1], 5))

    train = np.array([[np.nan, 1.0], [np.nan, np.nan], [0.0, np.nan], [np.nan, np.nan]])
    p_train = np.array([[0.99, 0.2], [0.5, 0.999], [0.99, 0.001], [0.001, 0.5]])
    imputed, mask = impute_labels(train, p_train, pos, neg)
    np.testing.assert_array_equal(imputed[:, 0], [1.0, np.nan, 0.0, 0.0])  # observed 0 kept despite 0.99
    np.testing.assert_array_equal(imputed[:, 1], [1.0, 1.0, 0.0, np.nan])
    assert mask.sum() == 4
    # no correct validation bag: nothing imputed for that task
    pos2, neg2 = imputation_thresholds(np.full((3, 1), 0.9), np.zeros((3, 1)))
    assert np.isnan(pos2[0]) and impute_labels(np.full((2, 1), np.nan), np.full((2, 1), 0.99), pos2, neg2)[1].sum() == 0
    assert list(performance_selection([0.65, 0.7, np.nan, 0.9])) == [1, 3]


def test_influence_keeps_tasks_whose_head_embeddings_predict_the_primary_task():
    from mixmil_workflow.models.momil_tasks import influence_score, influence_selection

    bags, y, _ = _tasks(n_bags=160, n_tasks=3, seed=2)
    # task 2 is a copy of task 0's activity (a related assay); task 1 is unrelated
    y[:, 2] = y[:, 0]
    x = bags.x.view(160, 12, -1).clone()
    train, val = np.arange(100), np.arange(100, 160)
    scores = {}
    for t in range(3):  # trained to the end (the reference schedule): an early-stopped head stays generic
        single = MoMIL(head="abmil", seed=0, **(FAST | {"schedule": "dsmil"})).fit(
            bags.subset(train), y[train, t : t + 1]
        )
        emb = single.bag_embeddings(Bags.from_dense(x))[:, 0]
        assert emb.shape == (160, FAST["hidden_dim"])
        scores[t] = influence_score(emb[train], y[train, 0], emb[val], y[val, 0])
    assert scores[0] > 0.8 and scores[2] > 0.8 and scores[1] < 0.7, scores
    assert influence_selection(scores, primary=0, threshold=0.9) == [2]


def test_multitask_simulation_is_sparse_structured_and_seeded():
    from mixmil_workflow.simulate.multitask import MultitaskParams, simulate_multitask

    params = MultitaskParams(n_bags=400)
    data = simulate_multitask(params, seed=0)
    again = simulate_multitask(params, seed=0)
    np.testing.assert_array_equal(data.x, again.x)
    np.testing.assert_array_equal(np.isnan(data.observed), np.isnan(again.observed))
    assert data.x.shape == (400, 30, 16) and data.n_tasks == 3 * 4 + 3 and data.primary.sum() == 3
    train = data.split == "train"
    fill = (~np.isnan(data.observed[train])).mean(0)
    assert 0.04 < fill[~data.primary].mean() < 0.09 and 0.06 < fill[data.primary].mean() < 0.16
    assert np.isnan(data.observed[data.split == "test"]).all()
    for t in range(data.n_tasks):  # every task trainable
        assert (data.observed[train, t] == 0).sum() >= 2 and (data.observed[train, t] == 1).sum() >= 2
    # related tasks agree with their primary task far more often than unrelated ones
    agree = lambda a, b: (data.labels[:, a] == data.labels[:, b]).mean()  # noqa: E731
    assert agree(0, 1) > 0.75 and abs(agree(0, 12) - 0.5) < 0.15
    # observed labels are the true ones
    seen = ~np.isnan(data.observed)
    np.testing.assert_array_equal(data.observed[seen], data.labels[seen])


def test_momil_comparison_runs_every_variant_and_records_the_selection(tmp_path):
    from mixmil_workflow.simulate.multitask import MultitaskParams, simulate_multitask
    from mixmil_workflow.studies.momil import VARIANTS, run_comparison, summarise

    data = simulate_multitask(
        MultitaskParams(n_bags=160, n_instances=10, n_programs=2, tasks_per_program=2, n_unrelated=1), seed=1
    )
    spec = dict(FAST, n_epochs=5)
    results, selection = run_comparison(data, spec, seed=0, mixmil_spec={"n_epochs": 20}, save_dir=tmp_path)
    assert list(summarise(results)["variant"]) == list(VARIANTS)
    # config save_models.momil: every variant's model and every single-task model, loadable to predict
    kept = sorted(p.name for p in tmp_path.iterdir())
    single = [f"single_task_task{t}.pt" for t in range(data.n_tasks)]
    assert kept == sorted([f"{v}.pt" for v in VARIANTS if v != "single_task"] + single)
    from mixmil_workflow.models import load
    from mixmil_workflow.studies.momil import _auc

    test = data.split == "test"
    prob = load(tmp_path / "momil.pt").predict(Bags.from_dense(data.x)).mean[test]
    auc = results[results["variant"] == "momil"].set_index("task")["test_auc"]
    assert [_auc(data.labels[test, t], prob[:, t]) for t in (0, 2)] == [auc[0], auc[2]]
    per_variant = results.groupby("variant")["task"].apply(sorted)
    assert all(tasks == [0, 2] for tasks in per_variant)  # the primary tasks
    assert results["test_auc"].between(0, 1).all()
    assert list(selection["task"]) == [1, 3, 4] and selection["selected"].dtype == bool
    imputed = results[results["variant"] == "momil_imputation"]["n_imputed"]
    assert (imputed >= 0).all()


def test_momil_through_the_model_interface_fits_binomial_labels_as_tasks(small_sim):
    """Genotype-like Binomial(2) labels: each output is a task (BCE on y / 2), fitted at once."""
    from mixmil_workflow.metrics import spearman_per_output
    from mixmil_workflow.models.registry import build as build_model

    spec = {"type": "momil", **{k: v for k, v in FAST.items() if k != "device"}, "n_epochs": 40, "dropout": 0.0}
    model = build_model(spec, seed=0, device="cpu", likelihood="binomial", n_trials=2)
    model.fit(small_sim.bags("train"), small_sim.y_train)
    prediction = model.predict(small_sim.bags("test"))
    assert prediction.mean.shape == (100, 2)
    assert ((prediction.mean > 0) & (prediction.mean < 2)).all()  # expected dosage n * sigmoid
    rho = spearman_per_output(prediction.bag_effect, small_sim.u_test)
    assert (rho > 0.3).all(), rho
    assert model.instance_scores(small_sim.bags("test")).shape == (small_sim.bags("test").n_instances, 2)
    with pytest.raises(ValueError, match="pos_weight balances binary labels"):
        build_model({**spec, "pos_weight": True}, seed=0, likelihood="binomial", n_trials=2)
    with pytest.raises(ValueError, match="got likelihood 'gaussian'"):
        build_model(spec, seed=0, likelihood="gaussian")


def test_task_similarity_table_is_read_symmetric_and_checked(tmp_path):
    from mixmil_workflow.models.momil_tasks import SimilarityTableError, read_task_similarity, similarity_selection

    tasks = ["task0", "task1", "task2", "task3"]
    path = tmp_path / "similarity.tsv"
    path.write_text("# STRING / 1000\ntask_a\ttask_b\tscore\ntask1\ttask0\t0.9\ntask0\ttask2\t0.5\n")
    matrix = read_task_similarity(path, tasks)
    assert matrix.loc["task0", "task1"] == matrix.loc["task1", "task0"] == 0.9
    assert matrix.loc["task0", "task3"] == 0.0
    assert similarity_selection(matrix, ["task0"], ["task1", "task2", "task3"], 0.7) == ["task1"]
    assert similarity_selection(matrix, ["task0"], ["task1", "task2", "task3"], 0.5) == ["task1", "task2"]
    for text, match in [
        ("a\tb\tscore\n", r"missing column\(s\) \['task_a', 'task_b'\]"),
        ("task_a\ttask_b\tscore\ntask0\ttask1\t900\n", r"row 2, field score: .*divide them by 1000"),
        ("task_a\ttask_b\tscore\ntask0\ttask9\t0.8\n", r"task\(s\) \['task9'\] .* not tasks of this study"),
    ]:
        path.write_text(text)
        with pytest.raises(SimilarityTableError, match=match) as err:
            read_task_similarity(path, tasks)
        assert str(path) in str(err.value)


def test_similarity_table_restricts_the_selection_and_the_shipped_table_fits_its_config():
    import yaml

    from mixmil_workflow.models.momil_tasks import read_task_similarity
    from mixmil_workflow.simulate.multitask import MultitaskParams, simulate_multitask
    from mixmil_workflow.studies.momil import select_tasks, single_task_fits

    repo = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "config/momil.yaml").read_text())["momil"]
    shipped = simulate_multitask(MultitaskParams(**config.get("simulation", {})), seed=0)
    matrix = read_task_similarity(repo / config["selection"]["similarity_table"], shipped.task_names)
    assert matrix.loc["task0", "task1"] > 0.7 and matrix.loc["task0", "task3"] == 0

    data = simulate_multitask(
        MultitaskParams(n_bags=160, n_instances=10, n_programs=2, tasks_per_program=2, n_unrelated=1), seed=1
    )
    single = single_task_fits(data, Bags.from_dense(data.x), dict(FAST, n_epochs=5), 0, range(data.n_tasks))
    # without a table every secondary task is a candidate; a table keeps only the similar ones of those
    everything, table = select_tasks(data, single, th_perf=0.0, th_inf=0.0, seed=0)
    assert everything and table["biologically_similar"].all()
    keep, other = f"task{everything[0]}", next(n for n in data.task_names[1:] if n != f"task{everything[0]}")
    similar = pd.DataFrame(0.0, index=data.task_names, columns=data.task_names)
    similar.loc[keep, "task0"] = similar.loc["task0", keep] = 0.8
    similar.loc[other, "task0"] = similar.loc["task0", other] = 0.6
    chosen, table = select_tasks(data, single, th_perf=0.0, th_inf=0.0, seed=0, similarity=similar, th_sim=0.7)
    assert chosen == [everything[0]]
    assert list(table.loc[table["biologically_similar"], "task"]) == [everything[0]]
