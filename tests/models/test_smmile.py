"""SMMILe (binary, spatial) and the spatial slide simulation it is evaluated on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from mixmil_workflow.models import load as load_model
from mixmil_workflow.models.smmile import SMMILe, add_superpatches, slide_grids
from mixmil_workflow.simulate.spatial import SpatialData, SpatialParams, simulate_spatial
from mixmil_workflow.studies.smmile import fit_and_score, localisation_metrics, split_bags, summarise_spatial

SMALL = SpatialParams(n_train=40, n_test=20, grid_size=(12, 16), n_features=8, min_patches=40, signal=2.5)
FAST = dict(
    hidden_dim=16,
    attention_dim=8,
    lr=3e-3,
    instance_rate=0.1,
    superpatch_groups=3,
    instance_dropout=False,
    progress=False,
)


@pytest.fixture(scope="module")
def small() -> SpatialData:
    return simulate_spatial(SMALL, seed=0)


def test_spatial_simulation_is_seeded_and_its_mask_is_consistent(small, tmp_path):
    again = simulate_spatial(SMALL, seed=0)
    np.testing.assert_array_equal(small.x, again.x)
    np.testing.assert_array_equal(small.patch_label, again.patch_label)
    assert small.n_slides == 60 and small.x.shape[1] == 8 and small.x.dtype == np.float32
    assert (small.split == "train").sum() == 40 and small.slide_label[:40].sum() == 20
    for s in range(small.n_slides):
        rows = slice(small.offsets[s], small.offsets[s + 1])
        tumour, mimic, coords = small.patch_label[rows], small.mimic[rows], small.coords[rows]
        assert (tumour.sum() > 0) == bool(small.slide_label[s])  # tumour exactly in the positive slides
        assert not (tumour & mimic).any()
        assert len(np.unique(coords[:, 0] * 1000 + coords[:, 1])) == len(coords)
        cells = {tuple(c) for c in coords}
        for r, c in coords[mimic == 1]:  # mimics stand alone: no other mimic or tumour next to them
            neighbours = [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
            flagged = {tuple(p) for p, t, m in zip(coords, tumour, mimic, strict=True) if t or m}
            assert not any(n in flagged for n in neighbours if n in cells)
    train_rows = slice(0, small.offsets[40])
    np.testing.assert_allclose(small.x[train_rows].mean(0), 0, atol=1e-5)
    # tumour and mimic patches share one shift: a patch alone cannot tell them apart
    shift = small.x[small.patch_label == 1].mean(0) - small.x[(small.patch_label == 0) & (small.mimic == 0)].mean(0)
    mimic_shift = small.x[small.mimic == 1].mean(0) - small.x[(small.patch_label == 0) & (small.mimic == 0)].mean(0)
    assert np.corrcoef(shift, mimic_shift)[0, 1] > 0.8
    small.save(tmp_path / "sim.npz")
    loaded = SpatialData.load(tmp_path / "sim.npz")
    np.testing.assert_array_equal(loaded.coords, small.coords)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a spatial simulation"):
        SpatialData.load(tmp_path / "other.npz")


def test_grids_need_integer_coordinates_one_patch_per_cell():
    offsets = np.array([0, 3])
    grids = slide_grids(np.array([[5, 7], [5, 8], [6, 7]]), offsets)
    assert grids[0].shape == (2, 2) and grids[0].rows.tolist() == [0, 0, 1] and grids[0].cols.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="same grid position"):
        slide_grids(np.array([[0, 0], [0, 0], [1, 1]]), offsets)
    with pytest.raises(ValueError, match="integer grid positions"):
        slide_grids(np.array([[0.0, 0.5], [1, 1], [2, 2]]), offsets)
    with pytest.raises(ValueError, match=r"\(patches, 2\)"):
        slide_grids(np.zeros((2, 2), int), offsets)
    from mixmil_workflow.bags import Bags

    bags = Bags.from_dense(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="pass coords"):
        SMMILe(**FAST).fit(bags, [1])


def test_superpatches_cover_the_tissue_and_sampling_takes_one_patch_each(small):
    rows = slice(small.offsets[0], small.offsets[1])
    grid = slide_grids(small.coords[rows], np.array([0, small.offsets[1]]))[0]
    add_superpatches(grid, small.x[rows], size=16, compactness=50.0)
    n = small.offsets[1]
    assert len(grid.superpatch) == n and grid.n_superpatches == len(torch.unique(grid.superpatch))
    assert grid.n_superpatches >= max(2, n // 16 // 2)
    # adjacency: every edge joins two superpatches that touch (4-neighbours)
    cells = {(int(r), int(c)): int(sp) for r, c, sp in zip(grid.rows, grid.cols, grid.superpatch, strict=True)}
    touching = {
        tuple(sorted((sp, cells[(r + dr, c + dc)])))
        for (r, c), sp in cells.items()
        for dr, dc in ((0, 1), (1, 0))
        if (r + dr, c + dc) in cells and cells[(r + dr, c + dc)] != sp
    }
    assert {tuple(e) for e in grid.edges.tolist()} == touching
    picks = SMMILe._sample_superpatches(grid, torch.Generator().manual_seed(0), groups=5)
    assert picks.shape == (5, grid.n_superpatches)
    for group in picks:
        np.testing.assert_array_equal(grid.superpatch[group].numpy(), np.arange(grid.n_superpatches))
    assert len({tuple(g.tolist()) for g in picks}) > 1  # groups differ


def test_pseudo_labels_follow_the_reference_rules():
    """Binary: category 0 = tumour, 1 = background (the last column, as in every form)."""
    model = SMMILe(form="binary", instance_rate=0.2)
    model.form = "binary"
    tumour, normal = torch.tensor([1.0]), torch.tensor([0.0])
    scores = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0])[:, None]
    idx, labels = model._pseudo_labels(scores, tumour, first=True)
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {9: 0, 8: 0, 0: 1, 1: 1}
    idx, labels = model._pseudo_labels(scores, normal, first=True)  # normal slide: hard negatives
    assert sorted(idx.tolist()) == [8, 9] and labels.tolist() == [1, 1]
    q = torch.cat([scores, 1 - scores], 1)
    q[9] = torch.tensor([0.5, 0.5])  # no longer among the top tumour probabilities
    idx, labels = model._pseudo_labels(q, tumour, first=False)
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {8: 0, 7: 0, 0: 1, 1: 1}
    # only scores beyond 0.5 are labelled, however large the share
    wide = SMMILe(instance_rate=0.6)
    wide.form = "binary"
    idx, labels = wide._pseudo_labels(scores, tumour, first=True)
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {9: 0, 8: 0, 7: 0, 6: 0, 5: 0, 0: 1, 1: 1,
                                                                     2: 1, 3: 1, 4: 1}  # fmt: skip


def test_pseudo_labels_per_category_for_multilabel_slides():
    model = SMMILe(instance_rate=0.25)
    model.form = "multilabel"
    # 8 patches, 3 categories; the slide holds categories 0 and 2
    scores = torch.tensor(
        [[0.9, 0.1, 0.0], [1.0, 0.0, 0.1], [0.0, 0.2, 0.95], [0.1, 0.0, 1.0],
         [0.0, 0.1, 0.1], [0.05, 0.0, 0.0], [0.3, 0.9, 0.2], [0.2, 0.3, 0.3]]
    )  # fmt: skip
    idx, labels = model._pseudo_labels(scores, torch.tensor([1.0, 0.0, 1.0]), first=True)
    got = sorted(zip(idx.tolist(), labels.tolist(), strict=True))
    # top 2 by category 0 -> 0, by category 2 -> 2 (category 1 is not on the slide), bottom 2 by the mean -> 3
    assert got == [(0, 0), (1, 0), (2, 2), (3, 2), (4, 3), (5, 3)]
    # an empty label set is a negative slide: its most tumour-like patches are background
    idx, labels = model._pseudo_labels(scores, torch.zeros(3), first=True)
    assert sorted(idx.tolist()) == [1, 3] and set(labels.tolist()) == {3}


def test_mrf_energy_vanishes_on_smooth_maps_and_grows_with_disagreement(small):
    rows = slice(small.offsets[1], small.offsets[2])
    grid = slide_grids(small.coords[rows], np.array([0, small.offsets[2] - small.offsets[1]]))[0]
    add_superpatches(grid, small.x[rows], size=16, compactness=50.0)
    model = SMMILe()
    gen = torch.Generator().manual_seed(0)
    flat = torch.full((len(grid.superpatch), 2), 0.5)
    assert model._mrf_energy(flat, grid, gen).item() == pytest.approx(0.0, abs=1e-12)
    noisy = torch.softmax(torch.randn(len(grid.superpatch), 2, generator=torch.Generator().manual_seed(1)) * 3, 1)
    assert model._mrf_energy(noisy, grid, gen).item() > 0.01


def test_negative_slides_get_the_consistency_loss_instead_of_copies():
    model = SMMILe(superpatch_groups=0)
    model.form = "binary"
    d = torch.tensor([0.5, -1.0, 2.0])[:, None]
    cls = torch.tensor([0.2, 0.1, 0.3])[:, None]
    grid = slide_grids(np.array([[0, 0], [0, 1], [0, 2]]), np.array([0, 3]))[0]
    p = (cls * torch.softmax(d, 0)).sum()
    expected = F.binary_cross_entropy(p, torch.tensor(0.0)) + ((d - d.mean()) ** 2).mean()
    loss = model._stage1_loss(d, cls, grid, torch.tensor([0.0]), torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_short_fit_localises_tumour_and_is_seeded_permutation_invariant_and_saved(small, tmp_path):
    torch.set_num_threads(1)
    model = SMMILe(seed=0, n_epochs_stage1=25, n_epochs_stage2=5, device="cpu", **FAST)
    slides, patches = fit_and_score(model, {"type": "smmile"}, small, save_to=tmp_path / "kept.pt")
    metrics = localisation_metrics(slides, patches)
    assert metrics["slide_auc"] > 0.75 and metrics["patch_auc"] > 0.8, metrics
    assert model.refined and patches["score"].between(0, 1).all()

    test, bags, coords = split_bags(small, "test")
    train, train_bags, train_coords = split_bags(small, "train")
    again = SMMILe(seed=0, n_epochs_stage1=25, n_epochs_stage2=5, device="cpu", **FAST)
    again.fit(train_bags, small.slide_label[train], coords=train_coords)
    np.testing.assert_array_equal(again.predict(bags, coords=coords).mean, model.predict(bags, coords=coords).mean)
    kept = load_model(tmp_path / "kept.pt")  # config save_models.smmile: the study's fit, as it was trained
    np.testing.assert_array_equal(kept.predict(bags, coords=coords).mean, model.predict(bags, coords=coords).mean)

    # the same patches in another order (with their coordinates) give the same slide and patch scores
    order = np.concatenate(
        [
            np.random.default_rng(0).permutation(np.arange(a, b))
            for a, b in zip(bags.offsets[:-1].tolist(), bags.offsets[1:].tolist(), strict=True)
        ]
    )
    from mixmil_workflow.bags import Bags

    shuffled = Bags(bags.x[order], bags.offsets)
    np.testing.assert_allclose(
        model.predict(shuffled, coords=coords[order]).mean, model.predict(bags, coords=coords).mean, rtol=1e-5
    )
    np.testing.assert_allclose(
        model.instance_scores(shuffled, coords=coords[order]),
        model.instance_scores(bags, coords=coords)[order],
        rtol=1e-4,
        atol=1e-6,
    )

    model.save(tmp_path / "smmile.pt")
    loaded = SMMILe.load(tmp_path / "smmile.pt")
    np.testing.assert_allclose(
        loaded.instance_scores(bags, coords=coords), model.instance_scores(bags, coords=coords), rtol=1e-6
    )
    with pytest.raises(ValueError, match="binary slide labels"):
        SMMILe(**FAST).fit(bags, np.full(len(test), 2.0), coords=coords)


def test_localisation_metrics_on_a_known_table():
    slides = pd.DataFrame({"slide": [0, 1], "label": [1, 0], "prob": [0.9, 0.2]})
    patches = pd.DataFrame(
        {
            "slide": [0, 0, 0, 0, 1, 1],
            "label": [1, 1, 0, 0, 0, 0],
            "mimic": [0, 0, 0, 1, 0, 1],
            "score": [10.0, 6.0, 2.0, 8.0, 1.0, 3.0],
        }
    )
    m = localisation_metrics(slides, patches)
    # slide 0 normalised: 1, 0.5, 0, 0.75 -> AUC of (1, 0.5) vs (0, 0.75) = 3/4
    assert m["patch_auc"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(0.8)
    assert m["slide_auc"] == 1.0
    # all slides, normalised x slide probability: tumour 0.9, 0.45; normal 0, 0.675, 0, 0.2
    assert m["patch_auc_all"] == pytest.approx(7 / 8)
    assert m["mimic_auc"] == pytest.approx(3 / 4)  # tumour (0.9, 0.45) vs mimics (0.675, 0.2)
    summary = summarise_spatial(pd.DataFrame([{"model": "a", **m}, {"model": "a", **m}]))
    assert summary.loc[0, "patch_auc"] == pytest.approx(0.75) and summary.loc[0, "patch_auc_se"] == 0.0


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_each_task_family_learns_a_held_out_toy_problem_with_one_output_per_category(task):
    """Shapes per form, and slide-level scores beating chance on the held-out slides (stage 1 and 2)."""
    from mixmil_workflow.studies.smmile import build_spatial_model

    torch.set_num_threads(1)
    data = simulate_spatial(SpatialParams(**{**SMALL.as_dict(), "signal": 3.0, "task": task}), seed=0)
    spec = {"type": "smmile", **FAST, "n_epochs_stage1": 20, "n_epochs_stage2": 4}
    model = build_spatial_model(spec, 0, "cpu", task=task, n_types=data.n_types)
    slides, patches = fit_and_score(model, spec, data)
    n_streams = 4 if task == "multiclass" else 3  # normal and 3 types / 3 types
    assert model.form == task and model.n_streams == n_streams and model.refined
    test, bags, coords = split_bags(data, "test")
    prediction = model.predict(bags, coords=coords)
    assert prediction.mean.shape == (len(test), n_streams)
    assert model.instance_scores(bags, coords=coords).shape == (bags.n_instances, n_streams)
    if task == "multiclass":
        np.testing.assert_allclose(prediction.mean.sum(1), 1.0, rtol=1e-6)
    metrics = localisation_metrics(slides, patches)
    assert metrics["slide_auc"] > 0.7, metrics
    assert {"patch_auc_1", "patch_auc_2", "patch_auc_3", "f1_3"} <= set(metrics)


def test_the_form_must_fit_the_labels():
    with pytest.raises(ValueError, match="form 'multiclass' does not fit likelihood 'bernoulli'"):
        SMMILe(form="multiclass", likelihood="bernoulli")
    with pytest.raises(ValueError, match="form 'binary' does not fit likelihood 'categorical'"):
        SMMILe(form="binary", likelihood="categorical", n_trials=None)
    with pytest.raises(ValueError, match="form must be auto or one of"):
        SMMILe(form="multi")
    from mixmil_workflow.bags import Bags

    bags = Bags.from_dense(np.zeros((2, 4, 3)))
    coords = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), (2, 1))
    with pytest.raises(ValueError, match="takes one label column"):
        SMMILe(form="binary", **FAST).fit(bags, np.eye(2), coords=coords)
    with pytest.raises(ValueError, match="category codes 0..2"):
        SMMILe(likelihood="categorical", n_trials=None, n_classes=3, **FAST).fit(bags, [0, 5], coords=coords)


def test_early_stopping_stops_on_the_validation_loss_and_keeps_the_best_epoch(small):
    """With patience 2 and no minimum epoch, a model whose validation loss cannot improve for long (a
    learning rate this high makes it jump) stops well before its 60 epochs; the kept weights are the best
    validation epoch's."""
    train, bags, coords = split_bags(small, "train")
    spec = {**FAST, "lr": 0.05, "n_epochs_stage1": 60, "n_epochs_stage2": 0, "patience_stage1": 2,
            "stop_epoch_stage1": 0, "validation_fraction": 0.3}  # fmt: skip
    model = SMMILe(seed=0, device="cpu", **spec).fit(bags, small.slide_label[train], coords=coords)
    assert len(model.history) < 60 and len(model.validation_history) == len(model.history)
    best = int(np.argmin(model.validation_history))
    assert len(model.history) == best + 1 + 2  # stopped `patience` epochs after the best
    # fixed epochs without a validation split
    fixed = SMMILe(seed=0, device="cpu", **{**spec, "validation_fraction": 0.0, "n_epochs_stage1": 5})
    assert len(fixed.fit(bags, small.slide_label[train], coords=coords).history) == 5


def test_superpatch_smoothing_gives_one_score_per_superpatch_and_the_bitempered_loss_is_bounded(small):
    from mixmil_workflow.models.smmile import bitempered_bce

    train, bags, coords = split_bags(small, "train")
    model = SMMILe(seed=0, device="cpu", sp_smooth=True, n_epochs_stage1=2, n_epochs_stage2=0, **FAST)
    model.fit(bags, small.slide_label[train], coords=coords)
    scores = model.instance_scores(bags, coords=coords)[: bags.offsets[1].item(), 0]
    grid = slide_grids(coords[: bags.offsets[1].item()], np.array([0, bags.offsets[1].item()]))[0]
    add_superpatches(grid, bags.x[: bags.offsets[1].item()].numpy(), 16, 50.0)
    for sp in range(grid.n_superpatches):
        assert len(np.unique(scores[grid.superpatch.numpy() == sp])) == 1
    p = torch.tensor([1e-9, 0.5, 1 - 1e-9])
    y = torch.tensor([1.0, 1.0, 0.0])
    assert torch.isfinite(bitempered_bce(p, y)) and bitempered_bce(p, y) < F.binary_cross_entropy(p, y)
    assert bitempered_bce(torch.tensor([0.999]), torch.tensor([1.0])) < 1e-3


def test_the_patch_expectation_tests_each_smmile_model_against_each_attention_baseline():
    from mixmil_workflow.studies.smmile import patch_expectation

    summary = pd.DataFrame({"model": ["smmile", "abmil", "mixmil", "rf"], "patch_auc": [0.9, 0.7, 0.88, 0.5],
                            "patch_auc_se": [0.01, 0.02, 0.01, 0.0]})  # fmt: skip
    families = {"smmile": "spatial", "abmil": "mil", "mixmil": "mixmil", "rf": "tree"}
    table = patch_expectation(summary, families).set_index("baseline")
    assert list(table.index) == ["abmil", "mixmil"]  # not the tree model
    assert table.loc["abmil", "smmile_higher"] and not table.loc["mixmil", "smmile_higher"]
    assert table.loc["abmil", "se"] == pytest.approx(np.hypot(0.01, 0.02))
