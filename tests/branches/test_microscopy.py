"""Microscopy branch (BBBC021): raw formats, split, nucleus table, illumination correction, crops, the
ResNet50 checkpoint mapping, PCA on training wells only, and the result tables."""

from __future__ import annotations

import io
import sqlite3
import zipfile

import numpy as np
import pandas as pd
import pytest

from mixmil_workflow.microscopy import bbbc021, crops, embedding, features, illumination, study
from mixmil_workflow.microscopy.demo import OUTSIDE_MOA_SUBSET, DemoSpec, write_demo

SMALL = DemoSpec(wells_per_treatment=1, sites=1, cells_per_site=5, height=192, width=224)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("bbbc021")
    paths = write_demo(out, SMALL, seed=3)
    images = bbbc021.read_image_table(paths["image"], paths["moa"])
    return paths, images


def test_demo_files_have_the_real_layout_and_join_to_the_moa_subset(demo):
    paths, images = demo
    raw = pd.read_csv(paths["image"])
    assert list(raw.columns) == list(bbbc021.IMAGE_COLUMNS)
    assert raw["Image_PathName_DAPI"].str.fullmatch(r"Week\d+/Week\d+_\d+").all()
    assert list(pd.read_csv(paths["moa"]).columns) == ["compound", "concentration", "moa"]
    # DMSO and compounds outside the MoA table are dropped; every field keeps its three channels
    assert not images["moa"].isin(["DMSO"]).any() and OUTSIDE_MOA_SUBSET not in set(images["compound"])
    assert images["moa"].nunique() == len(SMALL.compounds)
    with zipfile.ZipFile(paths[SMALL.plates[0]]) as archive:
        names = set(archive.namelist())
        row = images[images["plate"] == SMALL.plates[0]].iloc[0]
        for channel, code in (("DAPI", 1), ("Tubulin", 2), ("Actin", 4)):
            member = row[f"file_{channel}"]
            assert member in names and f"_s{row['site']}_w{code}" in member
            image = illumination.read_tiff(archive, member, "test")
            assert image.shape == (SMALL.height, SMALL.width)
        import tifffile

        raw_tiff = tifffile.imread(io.BytesIO(archive.read(row["file_DAPI"])))
        assert raw_tiff.dtype == np.uint16


def test_a_missing_column_names_the_file_and_the_column(demo, tmp_path):
    paths, _ = demo
    broken = tmp_path / "BBBC021_v1_image.csv"
    pd.read_csv(paths["image"]).drop(columns="Image_Metadata_Concentration").to_csv(broken, index=False)
    with pytest.raises(bbbc021.MicroscopyError, match=r"BBBC021_v1_image.csv.*Image_Metadata_Concentration"):
        bbbc021.read_image_table(broken, paths["moa"])


def test_each_repeat_holds_out_one_plate_per_compound_and_repeats_differ(demo):
    _, images = demo
    wells = bbbc021.held_out_plates(bbbc021.well_table(images), 3, seed=0)
    for compound, rows in wells.groupby("compound"):
        held = [set(rows.loc[rows[f"split_r{r}"] == "test", "plate"]) for r in range(3)]
        assert all(len(h) == 1 for h in held), compound
        # the compound's wells on that plate are all test wells, the rest all training
        for r in range(3):
            on_plate = rows["plate"].isin(held[r])
            assert (rows.loc[on_plate, f"split_r{r}"] == "test").all()
            assert (rows.loc[~on_plate, f"split_r{r}"] == "train").all()
        assert len(set.union(*held)) == 3  # three plates: each repeat a different one
    one_plate = wells[wells["plate"] == SMALL.plates[0]]
    with pytest.raises(bbbc021.MicroscopyError, match="one plate only"):
        bbbc021.held_out_plates(one_plate, 1, seed=0)


def test_nucleus_centres_come_from_the_sqlite_and_a_renamed_column_fails_clearly(demo, tmp_path):
    paths, images = demo
    nuclei = bbbc021.read_nucleus_locations(paths["nuclei"], images)
    truth = pd.read_csv(paths["truth"], sep="\t", dtype={"plate": str})
    keys = images[["plate", "well", "site"]]
    expected = truth.merge(keys, on=["plate", "well", "site"])
    assert len(nuclei) == len(expected) > 0
    np.testing.assert_allclose(np.sort(nuclei["x"].to_numpy()), np.sort(expected["x"].to_numpy()))
    renamed = tmp_path / "renamed.sqlite"
    with sqlite3.connect(renamed) as db:
        db.execute("CREATE TABLE Nuclei (TableNumber, ImageNumber, ObjectNumber, Location_X, Location_Y)")
    with pytest.raises(bbbc021.MicroscopyError, match=r"renamed.sqlite.*Nuclei_Location_Center_X"):
        bbbc021.read_nucleus_locations(renamed, images)


def _plate_zip(path, images_by_name):
    import tifffile

    with zipfile.ZipFile(path, "w") as archive:
        for name, image in images_by_name.items():
            buffer = io.BytesIO()
            tifffile.imwrite(buffer, image)
            archive.writestr(name, buffer.getvalue())


def test_illumination_correction_removes_a_shared_smooth_field(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    field = 1.0 + 1.5 * np.exp(-((yy - 20) ** 2 + (xx - 50) ** 2) / 800.0)  # a bright spot, as lamps make
    images = {}
    for k in range(12):
        for code in (1, 2, 4):
            scene = 1000.0 * (1 + 0.05 * rng.standard_normal((64, 80)))
            images[f"Week1_1/Week1_1_B02_s{k + 1}_w{code}ABC.tif"] = (scene * field).astype(np.uint16)
    zip_path = tmp_path / "BBBC021_v1_images_Week1_1.zip"
    _plate_zip(zip_path, images)
    functions = illumination.illumination_functions(zip_path, sigma=4)
    assert set(functions) == {"DAPI", "Tubulin", "Actin"} and functions["DAPI"].min() >= 1.0
    flat = images["Week1_1/Week1_1_B02_s1_w1ABC.tif"] / functions["DAPI"]
    raw = images["Week1_1/Week1_1_B02_s1_w1ABC.tif"].astype(float)
    # spot vs corner: 2.5x brighter before, within a few per cent after
    spot, corner = (slice(15, 25), slice(45, 55)), (slice(50, 60), slice(0, 10))
    assert raw[spot].mean() / raw[corner].mean() > 2.0
    assert abs(flat[spot].mean() / flat[corner].mean() - 1) < 0.08
    corrected = illumination.correct(raw, functions["DAPI"])
    assert corrected.min() >= 0 and corrected.max() <= 1
    # a plate zip that lost a file is refused (BBBC021 has no checksums to catch it)
    del images["Week1_1/Week1_1_B02_s3_w2ABC.tif"]
    _plate_zip(tmp_path / "incomplete.zip", images)
    with pytest.raises(bbbc021.MicroscopyError, match=r"incomplete.zip: channels have different numbers"):
        illumination.plate_channel_members(tmp_path / "incomplete.zip")


def test_crops_are_centred_on_the_nucleus_and_border_nuclei_are_left_out(tmp_path):
    image = np.full((120, 140), 100, dtype=np.uint16)
    image[60, 70] = 60000  # the nucleus centre pixel
    names = {f"P/Week1_1_B02_s1_w{code}X.tif": image for code in (1, 2, 4)}
    zip_path = tmp_path / "plate.zip"
    _plate_zip(zip_path, names)
    images = pd.DataFrame(
        {
            "plate": ["Week1_1"],
            "well": ["B02"],
            "site": [1],
            "compound": ["c"],
            "concentration": [1.0],
            "moa": ["m"],
            "replicate": [1],
            **{
                f"file_{ch}": [f"P/Week1_1_B02_s1_w{code}X.tif"]
                for ch, code in (("DAPI", 1), ("Tubulin", 2), ("Actin", 4))
            },
        }
    )
    nuclei = pd.DataFrame({"plate": "Week1_1", "well": "B02", "site": 1, "x": [70.4, 10.0], "y": [60.6, 60.0]})
    functions = {ch: np.ones((120, 140), dtype=np.float32) for ch in ("DAPI", "Tubulin", "Actin")}
    array, table, at_border = crops.crop_plate(zip_path, functions, images, nuclei, box=32)
    assert array.shape == (1, 3, 32, 32) and array.dtype == np.uint8 and at_border == 1
    assert np.unravel_index(array[0, 0].argmax(), (32, 32)) == (16, 16)
    assert list(table.columns) == crops.CROP_COLUMNS and table["bag"].iloc[0] == "Week1_1_B02"
    crops.save_crops(tmp_path / "c.h5", tmp_path / "c.tsv.gz", array, table)
    np.testing.assert_array_equal(crops.read_crops(tmp_path / "c.h5"), array)


def _simclr_checkpoint(path, seed=0):
    """A checkpoint in the SimCLR-for-cell-profiling layout: torchvision ResNet50 minus fc as
    ``features`` (an nn.Sequential), projection head l1/l2, saved under "state_dict"."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    resnet = torchvision.models.resnet50(weights=None)
    model = torch.nn.Module()
    model.features = torch.nn.Sequential(*list(resnet.children())[:-1])
    model.l1 = torch.nn.Linear(2048, 2048)
    model.l2 = torch.nn.Linear(2048, 256)
    with torch.no_grad():  # running statistics away from 0/1, so that a BN mix-up would show
        for module in model.features.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    torch.save({"state_dict": model.state_dict(), "optimizer_state_dict": {}, "scheduler": None}, path)
    return model.features.eval()


def test_simclr_checkpoint_loads_into_timm_resnet50_with_identical_features(tmp_path):
    import torch

    path = tmp_path / "model_best.pth"
    reference = _simclr_checkpoint(path)
    encoder = embedding.build_encoder(path, seed=0)
    crops_u8 = np.random.default_rng(0).integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8)
    ours = embedding.embed_crops(encoder, lambda a, b: crops_u8[a:b], 3, batch_size=2)
    x = torch.from_numpy(crops_u8).float() / 255
    mean, std = (
        torch.tensor(embedding.SIMCLR_MEAN).view(1, 3, 1, 1),
        torch.tensor(embedding.SIMCLR_STD).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        theirs = reference((x - mean) / std).flatten(1).numpy()
    assert ours.shape == (3, 2048)
    # float32 convolutions in batches of 2 vs 3 take different kernels on some CPUs (one element of 6,144 was
    # 3e-4 off on this host); wrong weights or normalisation would differ by O(1).
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def test_an_incomplete_or_foreign_checkpoint_is_an_error(tmp_path):
    import torch

    path = tmp_path / "model.pth"
    _simclr_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    incomplete = {k: v for k, v in state.items() if not k.startswith("features.7.2.")}
    torch.save({"state_dict": incomplete}, tmp_path / "incomplete.pth")
    with pytest.raises(bbbc021.MicroscopyError, match=r"incomplete.pth: \d+ ResNet50 weights missing.*layer4.2"):
        embedding.build_encoder(tmp_path / "incomplete.pth", seed=0)
    foreign = dict(state) | {"encoder.extra.weight": torch.zeros(1)}
    torch.save({"state_dict": foreign}, tmp_path / "foreign.pth")
    with pytest.raises(bbbc021.MicroscopyError, match=r"foreign.pth: 1 keys .*encoder.extra.weight"):
        embedding.build_encoder(tmp_path / "foreign.pth", seed=0)
    with pytest.raises(bbbc021.MicroscopyError, match="does not exist"):
        embedding.build_encoder(tmp_path / "absent.pth", seed=0)
    (tmp_path / "share.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip, as a share download may be
    with pytest.raises(bbbc021.MicroscopyError, match=r"(?s)share.zip is not a torch checkpoint.*unpack"):
        embedding.build_encoder(tmp_path / "share.zip", seed=0)


def test_without_a_checkpoint_the_random_encoder_is_seeded():
    a = embedding.build_encoder(None, seed=5).state_dict()["layer1.0.conv1.weight"]
    b = embedding.build_encoder(None, seed=5).state_dict()["layer1.0.conv1.weight"]
    c = embedding.build_encoder(None, seed=6).state_dict()["layer1.0.conv1.weight"]
    assert (a == b).all() and not (a == c).all()


def _cells_and_wells(rng, n_wells=6, per_well=5, dim=12):
    wells = pd.DataFrame(
        {
            "bag": [f"Week1_{k % 3}_B0{k}" for k in range(n_wells)],
            "plate": [f"Week1_{k % 3}" for k in range(n_wells)],
            "well": [f"B0{k}" for k in range(n_wells)],
            "compound": ["a", "b"] * (n_wells // 2),
            "moa": ["A", "B"] * (n_wells // 2),
            "split_r0": ["train", "train", "train", "train", "test", "test"],
        }
    )
    cells = pd.DataFrame({"bag": np.repeat(wells["bag"], per_well).to_numpy()})
    return rng.normal(size=(len(cells), dim)).astype(np.float32), cells, wells


def test_pca_is_fitted_on_training_wells_only():
    rng = np.random.default_rng(0)
    x, cells, wells = _cells_and_wells(rng)
    z, bags, summary = features.repeat_features(x, cells, wells, 0, 4, seed=0)
    assert z.shape == (len(x), 4) and list(bags["fold"]) == [-1, -1, -1, -1, 0, 0]
    assert list(bags["n_instances"]) == [5] * 6 and summary["training_cells"] == 20
    assert [c for c in bags.columns if c.startswith("plate_")] == ["plate_Week1_1", "plate_Week1_2"]
    changed = x.copy()
    changed[cells["bag"].isin(wells.loc[wells["split_r0"] == "test", "bag"]).to_numpy()] += 100.0
    z2, _, _ = features.repeat_features(changed, cells, wells, 0, 4, seed=0)
    train = cells["bag"].isin(wells.loc[wells["split_r0"] == "train", "bag"]).to_numpy()
    np.testing.assert_allclose(z2[train], z[train], rtol=1e-4, atol=1e-4)
    with pytest.raises(bbbc021.MicroscopyError, match="pca_components"):
        features.repeat_features(x, cells, wells, 0, 13, seed=0)
    # validation wells: training wells only, a share of each MoA's
    validation = bags.loc[bags["validation"]]
    assert (validation["split"] == "train").all() and sorted(validation["moa"]) == ["A", "B"]


def test_validation_wells_take_a_share_of_each_moas_training_wells():
    bags = pd.DataFrame({"moa": list("AAAAAAAAAABBBBB"), "split": ["train"] * 12 + ["test"] * 3})
    mask = features.validation_wells(bags, 0.2, seed=0)
    assert mask[:10].sum() == 2 and mask[10:12].sum() == 1 and not mask[12:].any()
    assert (mask == features.validation_wells(bags, 0.2, seed=0)).all()


def test_sweep_selects_the_best_validation_f1_over_repeats(tmp_path):
    combos = {"abmil": [{"type": "abmil", "lr": 0.01}, {"type": "abmil", "lr": 0.001}]}
    runs = []
    for combo, correct in ((0, (2, 3)), (1, (4, 4))):
        for repeat, n in enumerate(correct):
            y = np.array([0, 0, 1, 1])
            pred = np.where(np.arange(4) < n, y, 1 - y)
            path = tmp_path / f"c{combo}r{repeat}.tsv"
            pd.DataFrame({"bag": list("abcd"), "y": y, "score": pred}).to_csv(path, sep="\t", index=False)
            runs.append(("abmil", combo, repeat, path))
    grid, best = study.summarise_microscopy_sweep(runs, combos)
    assert list(grid["n_repeats"]) == [2, 2] and list(grid["lr"]) == [0.01, 0.001]
    assert best.iloc[0]["combination"] == 1 and best.iloc[0]["f1_macro"] == 1.0


def test_result_tables_average_over_repeats():
    rows = []
    for repeat, correct in enumerate((4, 3)):
        y = np.array([0, 0, 1, 1])
        pred = y.copy()
        pred[correct:] = 1 - pred[correct:]
        rows.append(
            pd.DataFrame({"bag": list("abcd"), "y": y, "score": pred, "prob_A": 0.5, "prob_B": 0.5}).assign(
                model="m", pcs=8, repeat=repeat
            )
        )
    metrics = study.run_metrics(pd.concat(rows, ignore_index=True))
    assert list(metrics["balanced_accuracy"]) == [1.0, 0.75]
    t2 = study.table2(metrics, 8).iloc[0]
    assert t2["balanced_accuracy_mean"] == pytest.approx(0.875)
    assert t2["balanced_accuracy_se"] == pytest.approx(np.std([1.0, 0.75], ddof=1) / np.sqrt(2))
    e3 = study.table_e3(metrics, 8).set_index("moa")
    assert e3.loc["A", "f1_mean"] == pytest.approx((1.0 + 0.8) / 2)  # repeat 1: A precision 1, recall 1 -> F1 of A
    with pytest.raises(bbbc021.MicroscopyError, match="principal components"):
        study.table2(metrics, 16)


def test_relative_weights_use_the_wells_class_and_bag_size():
    weights = np.array([[0.7, 0.1], [0.3, 0.9], [0.2, 0.5], [0.2, 0.25], [0.6, 0.25]])
    offsets = np.array([0, 2, 5])
    w = study.relative_weights(weights, offsets, np.array([0, 1]))
    np.testing.assert_allclose(w, [1.4, 0.6, 1.5, 0.75, 0.75])
    cells = pd.DataFrame(
        {
            "bag": ["a"] * 4 + ["b"] * 4,
            "weight": [4, 3, 2, 1] * 2,
            "kind": ["debris", "responder", "responder", "blurred"] * 2,
        }
    )
    ranks = study.kind_ranks(cells)
    assert ranks["top_cell_is_artefact"] == 1.0 and ranks["bottom_cell_is_artefact"] == 1.0
    assert ranks["percentile:artefact"] == pytest.approx((1.0 + 0.25) / 2)
