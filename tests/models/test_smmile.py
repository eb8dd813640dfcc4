"""SMMILe (binary, spatial) and the spatial slide simulation it is evaluated on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

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
    model = SMMILe(instance_rate=0.2)
    scores = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0])
    idx, labels = model._pseudo_labels(scores, 1, first=True)
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {9: 1, 8: 1, 0: 0, 1: 0}
    idx, labels = model._pseudo_labels(scores, 0, first=True)  # normal slide: hard negatives
    assert sorted(idx.tolist()) == [8, 9] and labels.tolist() == [0, 0]
    q = torch.stack([1 - scores, scores], 1)
    q[9] = torch.tensor([0.5, 0.5])  # no longer among the top tumour probabilities
    idx, labels = model._pseudo_labels(q, 1, first=False)
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {8: 1, 7: 1, 0: 0, 1: 0}
    # only scores beyond 0.5 are labelled, however large the share
    idx, labels = SMMILe(instance_rate=0.6)._pseudo_labels(scores, 1, first=True)
    assert dict(zip(idx.tolist(), labels.tolist(), strict=True)) == {
        9: 1,
        8: 1,
        7: 1,
        6: 1,
        5: 1,
        0: 0,
        1: 0,
        2: 0,
        3: 0,
        4: 0,
    }


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
    d = torch.tensor([0.5, -1.0, 2.0])
    cls = torch.tensor([0.2, 0.1, 0.3])
    grid = slide_grids(np.array([[0, 0], [0, 1], [0, 2]]), np.array([0, 3]))[0]
    p = (cls * torch.softmax(d, 0)).sum()
    expected = F.binary_cross_entropy(p, torch.tensor(0.0)) + ((d - d.mean()) ** 2).mean()
    loss = model._stage1_loss(d, cls, grid, 0.0, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_short_fit_localises_tumour_and_is_seeded_permutation_invariant_and_saved(small, tmp_path):
    torch.set_num_threads(1)
    model = SMMILe(seed=0, n_epochs_stage1=25, n_epochs_stage2=5, device="cpu", **FAST)
    slides, patches = fit_and_score(model, {"type": "smmile"}, small)
    metrics = localisation_metrics(slides, patches)
    assert metrics["slide_auc"] > 0.75 and metrics["patch_auc"] > 0.8, metrics
    assert model.refined and patches["score"].between(0, 1).all()

    test, bags, coords = split_bags(small, "test")
    train, train_bags, train_coords = split_bags(small, "train")
    again = SMMILe(seed=0, n_epochs_stage1=25, n_epochs_stage2=5, device="cpu", **FAST)
    again.fit(train_bags, small.slide_label[train], coords=train_coords)
    np.testing.assert_array_equal(again.predict(bags, coords=coords).mean, model.predict(bags, coords=coords).mean)

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
