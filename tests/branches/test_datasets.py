"""Bring your own bags: AnnData + bag table -> checked bags, labels and covariates."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from mixmil_workflow import MixMIL
from mixmil_workflow.own_bags.input import DatasetError, _gather_checked, load_bag_dataset, stacked_folds


def write_dataset(root, n_bags=12, q=4, seed=0, shuffle=True, table_format="tsv"):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_bags)
    sizes[0] = 1  # a single-instance bag is allowed
    bag_of = np.repeat([f"s{b}" for b in range(n_bags)], sizes)
    x = rng.standard_normal((len(bag_of), q)).astype(np.float32)
    order = rng.permutation(len(bag_of)) if shuffle else np.arange(len(bag_of))
    adata = anndata.AnnData(X=x[order], obs=pd.DataFrame({"sample": bag_of[order]}, index=[f"c{i}" for i in order]))
    adata.obsm["X_emb"] = x[order] * 2
    adata.write_h5ad(root / "cells.h5ad")
    table = pd.DataFrame(
        {
            "bag": [f"s{b}" for b in range(n_bags)],
            "dosage": rng.integers(0, 3, n_bags),
            "disease": rng.integers(0, 2, n_bags),
            "moa": rng.choice(["actin", "dna", "tubulin"], n_bags),
            "age": rng.normal(50, 10, n_bags),
        }
    )
    path = root / f"bags.{table_format}"
    if table_format == "parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, sep="\t" if table_format == "tsv" else ",", index=False)
    return x[order], bag_of[order], table, path  # the instances as the h5ad holds them


LABELS = {"dosage": {"likelihood": "binomial", "n_trials": 2}, "disease": "bernoulli", "moa": "categorical"}


@pytest.mark.parametrize("table_format", ["tsv", "csv", "parquet"])
def test_bags_labels_and_covariates_come_back_in_table_order(tmp_path, table_format):
    x, bag_of, table, path = write_dataset(tmp_path, table_format=table_format)
    ds = load_bag_dataset(tmp_path / "cells.h5ad", path, LABELS, bag_column="sample", covariates=["age"])
    assert ds.n_bags == len(table) and list(ds.bag_ids) == table["bag"].tolist()
    offsets = ds.bags.offsets.numpy()
    for b, bag in enumerate(table["bag"]):
        np.testing.assert_array_equal(ds.bags.x[offsets[b] : offsets[b + 1]].numpy(), x[bag_of == bag])
    assert ds.bags.sizes[0] == 1
    np.testing.assert_array_equal(ds.labels["dosage"], table["dosage"])
    assert list(ds.classes["moa"]) == sorted(set(table["moa"]))
    assert list(ds.classes["moa"][ds.labels["moa"]]) == table["moa"].tolist()
    np.testing.assert_allclose(ds.covariates[:, 0], table["age"])
    obsm = load_bag_dataset(
        tmp_path / "cells.h5ad", path, {"disease": "bernoulli"}, bag_column="sample", embedding="X_emb"
    )
    np.testing.assert_allclose(obsm.bags.x.numpy(), 2 * ds.bags.x.numpy())


def test_the_loaded_dataset_trains_mixmil_with_covariates(tmp_path):
    _, _, _, path = write_dataset(tmp_path, n_bags=30)
    ds = load_bag_dataset(tmp_path / "cells.h5ad", path, LABELS, bag_column="sample", covariates=["age"])
    model = MixMIL(likelihood="binomial", n_trials=2, n_epochs=3, progress=False)
    model.fit(ds.bags, ds.labels["dosage"], ds.covariates)
    weights = model.instance_weights(ds.bags)
    np.testing.assert_allclose(np.add.reduceat(weights.mean[:, 0], weights.offsets[:-1]), 1, rtol=1e-5)


def test_instances_in_bag_order_are_not_copied():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert _gather_checked(x, None, "x", np.arange(6)) is x
    gathered = _gather_checked(x.astype(np.float64), np.array([1, 0, 2, 3, 5, 4]), "x", np.arange(6), chunk=4)
    assert gathered.dtype == np.float32 and gathered[0, 0] == 2.0


def _break(tmp_path, case):
    x, bag_of, table, path = write_dataset(tmp_path, shuffle=False)
    h5ad = tmp_path / "cells.h5ad"
    labels, covariates, kwargs = dict(LABELS), ["age"], {"bag_column": "sample"}
    if case == "missing-h5ad":
        h5ad = tmp_path / "nope.h5ad"
    elif case == "missing-table":
        path = tmp_path / "nope.tsv"
    elif case == "corrupt-h5ad":
        h5ad.write_bytes(b"not an hdf5 file")
    elif case == "corrupt-table":
        path = tmp_path / "bags.parquet"
        path.write_bytes(b"PAR1 garbage")
    elif case == "corrupt-csv":
        path = tmp_path / "bags.csv"
        path.write_bytes(b"\xff\xfe\x00\x81binary\x00garbage\n\x9c\x00")
    elif case == "unknown-format":
        path = path.rename(tmp_path / "bags.xlsx")
    elif case == "obs-column":
        kwargs["bag_column"] = "donor"
    elif case == "obsm-key":
        kwargs["embedding"] = "X_scvi"
    elif case == "table-column":
        covariates = ["sex"]
    elif case == "orphan-instances":
        table.iloc[1:].to_csv(path, sep="\t", index=False)
    elif case == "empty-bag":
        pd.concat([table, table.iloc[[0]].assign(bag="s99")]).to_csv(path, sep="\t", index=False)
    elif case == "duplicate-bag":
        pd.concat([table, table.iloc[[0]]]).to_csv(path, sep="\t", index=False)
    elif case == "nan-embedding":
        adata = anndata.read_h5ad(h5ad)
        adata.X[3, 1] = np.nan
        adata.write_h5ad(h5ad)
    elif case == "binomial-support":
        table.assign(dosage=table["dosage"].where(table.index != 2, 3)).to_csv(path, sep="\t", index=False)
    elif case == "bernoulli-support":
        table.assign(disease=table["disease"] + 1).to_csv(path, sep="\t", index=False)
    elif case == "missing-label":
        table.assign(dosage=table["dosage"].where(table.index != 4)).to_csv(path, sep="\t", index=False)
    elif case == "inf-covariate":
        table.assign(age=table["age"].where(table.index != 3, np.inf)).to_csv(path, sep="\t", index=False)
    elif case == "zero-column-embedding":
        adata = anndata.read_h5ad(h5ad)
        adata.obsm["X_empty"] = np.zeros((adata.n_obs, 0), np.float32)
        adata.write_h5ad(h5ad)
        kwargs["embedding"] = "X_empty"
    elif case == "one-class":
        table.assign(moa="actin").to_csv(path, sep="\t", index=False)
    elif case == "constant-covariate":
        table.assign(age=40.0).to_csv(path, sep="\t", index=False)
    return h5ad, path, labels, covariates, kwargs


CASES = {
    "missing-h5ad": r"nope\.h5ad does not exist",
    "missing-table": r"nope\.tsv does not exist",
    "corrupt-h5ad": r"cells\.h5ad is not a readable AnnData",
    "corrupt-table": r"bags\.parquet cannot be read as parquet",
    "corrupt-csv": r"bags\.csv cannot be read as csv",
    "unknown-format": r"unknown format '\.xlsx'",
    "obs-column": r"obs has no column 'donor'.*set bag_column",
    "obsm-key": r"no obsm key 'X_scvi'.*X_emb",
    "table-column": r"missing columns \['sex'\]",
    "orphan-instances": r"bag id\(s\) in obs\['sample'\] are not in bag table.*\['s0'\]",
    "empty-bag": r"have no instances.*\['s99'\]",
    "duplicate-bag": r"listed more than once.*\['s0'\]",
    "nan-embedding": r"NaN/Inf \(first at instance 'c3', feature 1\)",
    "binomial-support": r"label column 'dosage'.*integers in 0\.\.2; found 3",
    "bernoulli-support": r"label column 'disease'.*integers in 0\.\.1; found 2",
    "missing-label": r"label column 'dosage': 1 bag\(s\) have no label \(e\.g\. row 6\).*missing_labels: true",
    "inf-covariate": r"covariate column 'age': 1 missing, infinite or non-numeric",
    "zero-column-embedding": r"embedding 'X_empty' has shape \(\d+, 0\).*at least one feature",
    "one-class": r"'moa': a categorical label needs at least two classes",
    "constant-covariate": r"covariate column 'age' is constant",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_clear_error(tmp_path, case):
    h5ad, path, labels, covariates, kwargs = _break(tmp_path, case)
    with pytest.raises(DatasetError, match=CASES[case]):
        load_bag_dataset(h5ad, path, labels, covariates=covariates, **kwargs)


def test_stacked_folds_balance_bags_and_keep_groups_together():
    folds = stacked_folds(23, 5, seed=0)
    assert sorted(np.bincount(folds)) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(folds, stacked_folds(23, 5, seed=0))
    groups = np.repeat(np.arange(6), 3)
    grouped = stacked_folds(18, 3, seed=1, groups=groups)
    assert all(len(set(grouped[groups == g])) == 1 for g in range(6))
    with pytest.raises(DatasetError, match="5-fold cross-validation needs at least 5 bags; found 4"):
        stacked_folds(4, 5, seed=0)
    with pytest.raises(DatasetError, match="needs at least 3 groups; found 2"):
        stacked_folds(6, 3, seed=0, groups=np.array([0, 0, 0, 1, 1, 1]))


def test_bag_ids_are_read_as_text(tmp_path):
    """Ids such as "000" and "007" stay text (a number reading would make them 0 and 7, not found)."""
    x = np.ones((4, 2), np.float32)
    adata = anndata.AnnData(X=x, obs=pd.DataFrame({"bag": ["000", "000", "007", "010"]}, index=list("abcd")))
    adata.write_h5ad(tmp_path / "cells.h5ad")
    (tmp_path / "bags.csv").write_text("bag,y\n000,0\n007,1\n010,1\n")
    ds = load_bag_dataset(tmp_path / "cells.h5ad", tmp_path / "bags.csv", {"y": "bernoulli"})
    assert list(ds.bag_ids) == ["000", "007", "010"] and ds.bags.sizes.tolist() == [2, 1, 1]


def test_missing_labels_are_kept_when_allowed(tmp_path):
    _, _, table, path = write_dataset(tmp_path, n_bags=12)
    table.assign(dosage=table["dosage"].astype(float).where(table.index != 4)).to_csv(path, sep="\t", index=False)
    ds = load_bag_dataset(tmp_path / "cells.h5ad", path, LABELS, bag_column="sample", missing_allowed=["dosage"])
    assert np.isnan(ds.labels["dosage"][4]) and np.isfinite(np.delete(ds.labels["dosage"], 4)).all()
