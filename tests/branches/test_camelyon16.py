"""Camelyon16 branch: the DSMIL archive layout, the streamed AnnData conversion, splits, preprocessing
against scikit-learn, and one model fitted on the demo archive."""

from __future__ import annotations

import io
import zipfile

import anndata
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from mixmil_workflow.camelyon16 import (
    ArchiveError,
    DemoSpec,
    assign_splits,
    convert_to_h5ad,
    fit_preprocessing,
    load_split,
    write_demo_archive,
)
from mixmil_workflow.camelyon16.study import camelyon16_models, run_model, slide_metrics

SMALL = DemoSpec(
    n_train_normal=8, n_train_tumor=8, n_test_normal=4, n_test_tumor=4, min_patches=5, max_patches=30, n_features=16
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("c16")
    write_demo_archive(root / "features.zip", root / "truth.tsv.gz", SMALL, seed=5)
    slides = convert_to_h5ad(root / "features.zip", root / "instances.h5ad", root / "slides.tsv")
    return root, slides


def test_demo_archive_has_the_dsmil_layout(demo):
    root, _ = demo
    with zipfile.ZipFile(root / "features.zip") as z:
        index = pd.read_csv(io.BytesIO(z.read("Camelyon16/Camelyon16.csv")), dtype=str)
        assert list(index.columns) == ["0", "label"]
        assert index["0"].str.match(r"datasets/Camelyon16/(0-normal|1-tumor)/(normal|tumor|test)_\d{3}\.csv").all()
        assert {"Camelyon16/0-normal.csv", "Camelyon16/1-tumor.csv"} <= set(z.namelist())
        text = z.read("Camelyon16/1-tumor/tumor_001.csv").decode()
    header, first = text.splitlines()[:2]
    assert header == ",".join(str(c) for c in range(16))
    assert all(len(v.split(".")[1]) <= 4 for v in first.split(","))  # DSMIL's float_format '%.4f'


def test_conversion_writes_every_patch_into_a_readable_h5ad(demo):
    root, slides = demo
    adata = anndata.read_h5ad(root / "instances.h5ad")
    assert adata.shape == (slides["n_instances"].sum(), 16) and adata.X.dtype == np.float32
    assert list(adata.obs["bag"].cat.categories) == slides["slide"].tolist()
    with zipfile.ZipFile(root / "features.zip") as z:
        for row in slides.sample(5, random_state=0).itertuples():
            folder = "1-tumor" if row.label else "0-normal"
            csv = pd.read_csv(io.BytesIO(z.read(f"Camelyon16/{folder}/{row.slide}.csv"))).to_numpy(np.float32)
            np.testing.assert_array_equal(adata.X[row.first_row : row.first_row + row.n_instances], csv)
            assert (adata.obs["bag"].iloc[row.first_row : row.first_row + row.n_instances] == row.slide).all()
    assert slides.groupby("official_split").size().to_dict() == {"test": 8, "train": 16}
    assert (slides["official_split"] == np.where(slides["slide"].str.startswith("test"), "test", "train")).all()


def test_unpacked_archive_converts_the_same(demo, tmp_path):
    root, slides = demo
    with zipfile.ZipFile(root / "features.zip") as z:
        z.extractall(tmp_path / "unpacked")
    again = convert_to_h5ad(tmp_path / "unpacked", tmp_path / "x.h5ad", tmp_path / "s.tsv")
    pd.testing.assert_frame_equal(again, slides)


def _nan_in_row(data: bytes, line: int) -> bytes:
    lines = data.split(b"\n")
    lines[line] = b"nan," + lines[line].split(b",", 1)[1]
    return b"\n".join(lines)


def _rewrite(src, dest, edit):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dest, "w") as out:
        for name in z.namelist():
            data = edit(name, z.read(name))
            if data is not None:
                out.writestr(name, data)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda n, d: None if n.endswith("tumor_002.csv") else d, "tumor_002.csv is not in the archive"),
        (lambda n, d: d.replace(b"tumor_003.csv,1", b"tumor_003.csv,2") if n.endswith("Camelyon16.csv") else d,
         "label '2'"),
        (lambda n, d: _nan_in_row(d, 2) if n.endswith("normal_001.csv") else d,
         "normal_001.csv: non-finite value at patch 1"),
        (lambda n, d: None if n.endswith("Camelyon16.csv") else d, "expected one Camelyon16.csv"),
        (lambda n, d: d.split(b"\n")[0] + b"\n" if n.endswith("normal_004.csv") else d, "has no patches"),
    ],
    ids=["missing-slide", "bad-label", "nan", "no-index", "empty-slide"],
)  # fmt: skip
def test_bad_archives_fail_naming_the_file_and_leave_no_output(demo, tmp_path, edit, message):
    root, _ = demo
    _rewrite(root / "features.zip", tmp_path / "bad.zip", edit)
    with pytest.raises(ArchiveError, match=message):
        convert_to_h5ad(tmp_path / "bad.zip", tmp_path / "out.h5ad", tmp_path / "slides.tsv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_not_a_zip_is_a_clear_error(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ArchiveError, match="not a readable zip file.*rerun the download rule"):
        convert_to_h5ad(tmp_path / "broken.zip", tmp_path / "o.h5ad", tmp_path / "s.tsv")


def test_validation_slides_are_stratified_and_seeded(demo):
    _, slides = demo
    a, b = assign_splits(slides, 0.25, seed=1), assign_splits(slides, 0.25, seed=1)
    pd.testing.assert_frame_equal(a, b)
    validation = a[a["split"] == "validation"]
    assert validation["label"].value_counts().to_dict() == {0: 2, 1: 2}
    assert (validation["official_split"] == "train").all()
    assert (a.loc[a["official_split"] == "test", "split"] == "test").all()
    assert not assign_splits(slides, 0.25, seed=2)["split"].equals(a["split"])


@pytest.mark.parametrize("pca", [None, 5])
def test_preprocessing_matches_scikit_learn_on_the_training_instances(demo, pca):
    root, slides = demo
    splits = assign_splits(slides, 0.25, seed=0)
    pre = fit_preprocessing(root / "instances.h5ad", splits, pca, max_rows=7)  # small blocks: many partial sums
    x = anndata.read_h5ad(root / "instances.h5ad").X
    train = splits[splits["split"] == "train"]
    rows = np.concatenate([np.arange(r.first_row, r.first_row + r.n_instances) for r in train.itertuples()])
    scaler = StandardScaler().fit(x[rows].astype(np.float64))
    np.testing.assert_allclose(pre.mean, scaler.mean_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pre.scale, scaler.scale_, rtol=1e-5)
    test = load_split(root / "instances.h5ad", splits, "test", pre)
    test_rows = np.concatenate(
        [np.arange(r.first_row, r.first_row + r.n_instances) for r in splits[splits["split"] == "test"].itertuples()]
    )
    expected = scaler.transform(x[test_rows].astype(np.float64))
    if pca:
        reference = PCA(pca, svd_solver="full").fit(scaler.transform(x[rows].astype(np.float64)))
        np.testing.assert_allclose(pre.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-4)
        expected = reference.transform(expected)
        # Component signs are a convention: compare up to sign per component.
        signs = np.sign((expected * test.bags.x.numpy()).sum(0))
        expected = expected * signs
    np.testing.assert_allclose(test.bags.x.numpy(), expected, rtol=1e-3, atol=1e-4)
    assert test.bags.n_bags == (splits["split"] == "test").sum()
    assert test.bags.x.data_ptr() == test.bags.x.untyped_storage().data_ptr()  # one matrix, bags are views


def test_mixmil_separates_the_demo_slides(tmp_path):
    write_demo_archive(tmp_path / "f.zip", tmp_path / "t.tsv.gz", DemoSpec(n_features=32), seed=0)
    slides = convert_to_h5ad(tmp_path / "f.zip", tmp_path / "i.h5ad", tmp_path / "s.tsv")
    splits = assign_splits(slides, 0.1, seed=0)
    pre = fit_preprocessing(tmp_path / "i.h5ad", splits, 16)
    data = {s: load_split(tmp_path / "i.h5ad", splits, s, pre) for s in ("train", "validation", "test")}
    predictions, instance = run_model(dict(type="mixmil", n_epochs=150, progress=False), data, seed=0)
    assert set(predictions["split"]) == {"validation", "test"}
    assert predictions["probability"].between(0, 1).all()
    assert slide_metrics(predictions)["test_auc"] > 0.75
    assert instance["scores"].shape == (data["test"].bags.n_instances,)
    # Attention weights sum to one within every test slide.
    sums = np.add.reduceat(instance["scores"], instance["offsets"][:-1])
    np.testing.assert_allclose(sums, 1, rtol=1e-4)


def test_model_list_is_checked():
    models = {"m": {"type": "mixmil"}, "rf": {"type": "random_forest"}}
    assert camelyon16_models({"activate": False, "models": ["x"]}, models) == []
    with pytest.raises(ValueError, match="'x', which is not defined"):
        camelyon16_models({"activate": True, "models": ["x"]}, models)
    with pytest.raises(ValueError, match="type 'random_forest'"):
        camelyon16_models({"activate": True, "models": ["rf"]}, models)


def test_sweep_selects_the_lowest_validation_loss(tmp_path):
    from mixmil_workflow.camelyon16.study import summarise_camelyon16_sweep, validation_loss

    def predictions(p_tumour, p_normal):
        frame = pd.DataFrame(
            {"slide": list("abcd"), "split": ["validation"] * 4, "label": [1, 1, 0, 0], "score": [2.0, 1.0, -1.0, -2.0]}
        ).assign(probability=[p_tumour, p_tumour, p_normal, p_normal], train_seconds=1.0)
        return pd.concat([frame, frame.assign(split="test", probability=0.5)])

    good, bad = predictions(0.9, 0.1), predictions(0.6, 0.4)
    assert validation_loss(good) == pytest.approx(-np.log(0.9))
    for k, frame in enumerate((bad, good)):
        frame.to_csv(tmp_path / f"c{k}.tsv", sep="\t", index=False)
    combos = {"abmil": [{"type": "abmil", "lr": 1e-3}, {"type": "abmil", "lr": 1e-4}]}
    grid, best = summarise_camelyon16_sweep([("abmil", k, tmp_path / f"c{k}.tsv") for k in (0, 1)], combos)
    assert list(grid["lr"]) == [1e-3, 1e-4]
    assert best["combination"].tolist() == [1] and best["lr"].tolist() == [1e-4]
    with pytest.raises(ValueError, match="validation_fraction"):
        validation_loss(good[good["split"] == "test"])
