"""The MoMIL, SMMILe and bring-your-own-bags comparisons through the workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mixmil_workflow.io import read_table
from tests.support.job_envs import assert_jobs_used_only_their_envs
from tests.support.workflow import REPO, snakemake


def test_momil_comparison_through_the_workflow(tmp_path):
    """The MoMIL rules on a small sparse multi-task simulation: every variant scored on the primary tasks
    of every repeat, the selection recorded, and nothing to redo afterwards."""
    config = REPO / "tests/configs/momil.yaml"
    workdir = tmp_path / "run"
    (tmp_path / "keep.yaml").write_text("save_models: {momil: true}\n")  # off by default: a simulation
    keep = (str(tmp_path / "keep.yaml"),)  # an overlay, after the configuration
    snakemake("--cores", "2", "--configfile", str(config), *keep, "--directory", str(workdir))
    summary = read_table(workdir / "results/momil/tables/momil_simulation.tsv")
    assert list(summary["variant"]) == [
        "single_task",
        "momil",
        "momil_selection",
        "momil_imputation",
        "momil_selection_imputation",
        "mixmil",
    ]
    assert summary["mean_auc"].between(0, 1).all()
    for repeat in (0, 1):
        results = read_table(workdir / f"results/momil/simulation/repeat{repeat}.tsv")
        assert sorted(results["task"].unique()) == [0, 2]  # the primary task of each program
        selection = read_table(workdir / f"results/momil/simulation/selection_repeat{repeat}.tsv")
        assert list(selection["task"]) == [1, 3, 4]
        kept = {p.name for p in (workdir / f"results/momil/models/repeat{repeat}").iterdir()}
        assert {f"{v}.pt" for v in summary["variant"] if v != "single_task"} | {"single_task_task0.pt"} <= kept
    assert assert_jobs_used_only_their_envs(workdir) >= 3
    again = snakemake("-n", "--configfile", str(config), *keep, "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_smmile_comparison_through_the_workflow(tmp_path):
    """The SMMILe rules on a small spatial simulation and on generated Camelyon16-format raw slides: every
    model scored on slides and patches of every repeat, the summaries and the spatial maps, and nothing to
    redo afterwards."""
    config = REPO / "tests/configs/smmile.yaml"
    workdir = tmp_path / "run"
    snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
    summary = read_table(workdir / "results/smmile/tables/spatial_simulation.tsv")
    assert list(summary["model"]) == ["smmile", "abmil", "mixmil"]
    assert (summary["n_repeats"] == 2).all()
    assert summary[["slide_auc", "patch_auc", "f1"]].apply(lambda c: c.between(0, 1)).all().all()
    for model in ("smmile", "abmil", "mixmil"):
        patches = read_table(workdir / f"results/smmile/simulation/{model}/repeat1/patches.tsv")
        slides = read_table(workdir / f"results/smmile/simulation/{model}/repeat1/slides.tsv")
        assert len(slides) == 12 and set(patches["slide"]) == set(slides["slide"])
        assert patches["score"].notna().all()
    assert (workdir / "results/smmile/figures/spatial_simulation.png").read_bytes()[:4] == b"\x89PNG"
    # the multiclass family (normal or one of two tumour types per slide): macro and per-category scores
    multiclass = read_table(workdir / "results/smmile/tables/spatial_simulation_multiclass.tsv")
    assert list(multiclass["model"]) == ["smmile", "abmil", "mixmil"]
    assert {"slide_accuracy", "patch_auc_1", "patch_auc_2", "f1_1", "f1_2"} <= set(multiclass.columns)
    slides = read_table(workdir / "results/smmile/simulation_multiclass/smmile/repeat0/slides.tsv")
    assert {"prob_0", "prob_1", "prob_2"} <= set(slides.columns) and set(slides["label"]) == {0, 1, 2}
    # the paper's claim (SMMILe's patch AUC above attention MIL) as a tested row, whichever way it falls
    expectation = (workdir / "results/smmile/tables/spatial_simulation_multiclass_expectation.md").read_text()
    assert "| smmile   | abmil      |" in expectation and "smmile_higher" in expectation
    # Camelyon16 raw slides: the official split (6 training slides, 4 test), patches labelled from the XML
    slides_table = read_table(workdir / "results/smmile/camelyon16/data/slides.tsv")
    assert list(slides_table["split"]).count("test") == 4 and len(slides_table) == 10
    c16 = read_table(workdir / "results/smmile/tables/spatial_camelyon16.tsv")
    assert list(c16["model"]) == ["smmile", "abmil", "mixmil"] and c16["slide_auc"].between(0, 1).all()
    patches = read_table(workdir / "results/smmile/camelyon16/smmile/repeat0/patches.tsv")
    positive = slides_table.index[slides_table["label"] == 1]
    assert set(patches.loc[patches["label"] == 1, "slide"]) <= set(positive)
    assert (patches["label"] == 1).any()
    assert (workdir / "results/smmile/figures/spatial_camelyon16.png").read_bytes()[:4] == b"\x89PNG"
    # every spatial fit is kept (save_models.smmile), a model of its own type
    from mixmil_workflow.models import load

    for study in ("simulation", "simulation_multiclass", "camelyon16"):
        for model in ("smmile", "abmil", "mixmil"):
            assert (workdir / f"results/smmile/models/{study}/{model}/repeat0.pt").stat().st_size > 0
    assert type(load(workdir / "results/smmile/models/camelyon16/smmile/repeat0.pt")).__name__ == "SMMILe"
    assert assert_jobs_used_only_their_envs(workdir) >= 3
    again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_smmile_on_raw_slides_of_a_subtyping_dataset(tmp_path):
    """Raw slides laid out like Camelyon16 whose tumours are one of two types (annotation groups LUAD and
    LUSC, named in reference.csv): the same rules tile them, label each patch with its type, and fit the
    multiclass forms, scored per category."""
    config = REPO / "tests/configs/smmile_subtyping.yaml"
    workdir = tmp_path / "run"
    snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
    reference = (workdir / "resources/camelyon16_slides/demo/testing/reference.csv").read_text()
    assert {line.split(",")[1] for line in reference.split()} == {"LUAD", "LUSC", "Normal"}
    slides = read_table(workdir / "results/smmile/camelyon16/data/slides.tsv").set_index("slide")
    # 4 + 3 normal slides; 3 + 3 training tumours of each type, the 3 test tumours split 2 / 1
    counts = slides["label"].value_counts().to_dict()
    assert counts[0] == 7 and sorted([counts[1], counts[2]]) == [4, 5]
    assert (slides.loc[slides.index.str.startswith("normal"), "label"] == 0).all()
    patches = read_table(workdir / "results/smmile/camelyon16/smmile/repeat0/patches.tsv")
    assert set(patches["label"]) == {0, 1, 2}
    # a patch of a tumour type lies on a test slide of that type (fits name slides by their row in slides.tsv)
    typed = patches[patches["label"] > 0]
    assert (typed["label"].to_numpy() == slides["label"].iloc[typed["slide"]].to_numpy()).all()
    assert set(slides.index[patches["slide"].unique()].str[:4]) == {"test"}
    scored = read_table(workdir / "results/smmile/camelyon16/smmile/repeat0/slides.tsv")
    assert {"prob_0", "prob_1", "prob_2"} <= set(scored.columns) and len(scored) == 6
    assert np.allclose(scored[["prob_0", "prob_1", "prob_2"]].sum(1), 1, atol=1e-4)
    summary = read_table(workdir / "results/smmile/tables/spatial_camelyon16.tsv")
    assert list(summary["model"]) == ["smmile", "abmil"]
    assert {"slide_auc", "slide_accuracy", "patch_auc_1", "patch_auc_2", "f1_1", "f1_2"} <= set(summary.columns)
    again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bring_your_own_bags_under_three_protocols(tmp_path):
    """The generated example dataset through repeated k-fold CV with a nested search, held-out groups with
    class weights and one job per fold, and a given split: every bag predicted once per repeat, label and
    model, metrics with standard errors, scores for every instance (table and .h5ad), the figure."""
    import anndata

    config = yaml.safe_load((REPO / "tests/configs/datasets_tiny.yaml").read_text())
    path = REPO / "tests/configs/datasets_tiny.yaml"
    snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp_path))
    bags = pd.read_csv(tmp_path / "resources/example_dataset/bags.tsv", sep="\t")
    for name, spec in config["datasets"].items():
        root = tmp_path / "results/datasets" / name
        comparison = pd.read_csv(root / f"{name}_comparison.tsv", sep="\t", comment="#")
        assert len(comparison) == len(spec["labels"]) * len(spec["models"])
        assert comparison["value"].notna().all()
        repeats = spec["protocol"].get("n_repeats", 1)
        assert (comparison["n_repeats"] == repeats).all()
        assert comparison["se"].notna().all() == (spec["protocol"]["kind"] != "split")
        predictions = pd.read_csv(root / "out_of_fold_predictions.tsv", sep="\t", comment="#")
        n_expected = (bags["split"] == "test").sum() if spec["protocol"]["kind"] == "split" else len(bags)
        for _, group in predictions.groupby(["label", "model", "repeat"]):
            assert len(group) == n_expected and group["bag"].is_unique
        assert (root / f"{name}_comparison.png").stat().st_size > 0
        timings = pd.read_csv(root / f"{name}_timings.tsv", sep="\t", comment="#")
        assert (timings["train_seconds"] > 0).all() and "train_seconds" not in comparison
    # Bernoulli labels: every metric of the field, and probabilities beside the logits.
    cv = pd.read_csv(tmp_path / "results/datasets/cv/cv_comparison.tsv", sep="\t", comment="#")
    disease = cv[cv["label"] == "disease"]
    for metric in ("auc", "accuracy", "balanced_accuracy", "f1", "log_loss"):
        assert disease[metric].between(0, 10).all() and disease[f"{metric}_se"].notna().all()
    predictions = pd.read_csv(tmp_path / "results/datasets/cv/out_of_fold_predictions.tsv", sep="\t", comment="#")
    bernoulli = predictions[(predictions["label"] == "disease") & (predictions["model"] != "mixmil")]
    np.testing.assert_allclose(bernoulli["probability"], 1 / (1 + np.exp(-bernoulli["linear_predictor"])), rtol=1e-3)
    mixmil = predictions[(predictions["label"] == "disease") & (predictions["model"] == "mixmil")]
    assert mixmil["probability"].between(0, 1).all()  # averaged over posterior samples: not sigmoid(mean logit)
    assert mixmil[["probability", "linear_predictor"]].corr("spearman").iloc[0, 1] > 0.95
    header = (tmp_path / "results/datasets/cv/out_of_fold_predictions.tsv").read_text().split("\n")[:5]
    assert any(line.startswith("# config sha256") for line in header) and any("probability" in line for line in header)
    # Nested CV: one choice per outer fit of abmil, none for the models without a search space.
    search = pd.read_csv(tmp_path / "results/datasets/cv/cv_tuning.tsv", sep="\t", comment="#")
    assert set(search["model"]) == {"abmil"} and search.groupby(["label", "repeat", "fold"])["chosen"].sum().eq(1).all()
    assert len(search) == 2 * 2 * 3 * 2  # labels x repeats x folds x candidates
    # Held-out groups: no pool is split across folds; one job per fold there, one per model in cv.
    prepared = pd.read_csv(tmp_path / "results/datasets/pools/prepared/bags.tsv", sep="\t")
    assert prepared.groupby("pool")["fold_r0"].nunique().eq(1).all()
    assert len(list((tmp_path / "results/datasets/pools/predictions/disease/abmil").glob("r0f*.tsv"))) == 4
    assert [p.name for p in (tmp_path / "results/datasets/cv/predictions/disease/abmil").glob("*.tsv")] == ["all.tsv"]
    # Every cell gets the weight of the model that held its donor out; weights sum to one per donor.
    weights = pd.read_csv(tmp_path / "results/datasets/cv/instance_weights.tsv.gz", sep="\t")
    assert len(weights) == weights["obs_name"].nunique() == anndata_rows(tmp_path)
    np.testing.assert_allclose(weights.groupby("bag")["dosage:mixmil"].sum(), 1, rtol=1e-4)
    assert "dosage:glmm" not in weights  # the GLMM has no instance weights
    single = weights[weights["bag"] == "donor_000"]  # the example's single-cell donor: weight exactly 1
    assert len(single) == 1 and single["dosage:mixmil"].iloc[0] == pytest.approx(1.0)
    # ... and the same scores in an .h5ad copy of the cells, as obs columns
    adata = anndata.read_h5ad(tmp_path / "results/datasets/cv/instances_with_weights.h5ad")
    assert adata.n_obs == len(weights) and "X_scvi" in adata.obsm
    indexed = weights.set_index("obs_name").loc[adata.obs_names]
    np.testing.assert_allclose(adata.obs["dosage:mixmil"], indexed["dosage:mixmil"], rtol=1e-6)
    assert assert_jobs_used_only_their_envs(tmp_path) > 10
    assert_saved_models_predict_the_held_out_bags(tmp_path, predictions)
    for name in config["datasets"]:  # every model's loss per epoch, one figure per dataset
        assert (tmp_path / f"results/datasets/{name}/figures/training_curves.png").read_bytes()[:4] == b"\x89PNG"

    # Bad input stops before any training and leaves no prepared files.
    bad = yaml.safe_load(path.read_text())
    bad["datasets"] = {"broken": {**config["datasets"]["cv"], "covariates": ["smoker"]}}
    bad_path = tmp_path / "bad.yaml"
    bad_path.write_text(yaml.safe_dump(bad))
    result = snakemake("--cores", "1", "--configfile", str(bad_path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    log = (tmp_path / "logs/datasets/broken/prepare.log").read_text()
    assert "missing columns ['smoker']" in log and "bags.tsv" in log
    assert not (tmp_path / "results/datasets/broken").exists()


def anndata_rows(workdir: Path) -> int:
    import anndata

    return anndata.read_h5ad(workdir / "resources/example_dataset/cells.h5ad").n_obs


def assert_saved_models_predict_the_held_out_bags(root, predictions: pd.DataFrame) -> None:
    """Every fit of a dataset is kept (save_models.datasets is on by default): loaded with its preprocessing,
    it predicts its held-out bags as the workflow did."""
    from mixmil_workflow.models import load
    from mixmil_workflow.own_bags.crossval import preprocessing_path
    from mixmil_workflow.own_bags.preprocess import FittedPreprocessing
    from mixmil_workflow.own_bags.study import load_prepared

    folder = root / "results/datasets/cv/models/dosage/mixmil/all"
    assert sorted(p.name for p in folder.glob("*.pt")) == [f"repeat{r}_fold{f}.pt" for r in (0, 1) for f in (0, 1, 2)]
    prepared = root / "results/datasets/cv/prepared"
    bags, table = load_prepared(prepared / "instances.npy", prepared / "bags.tsv", "donor")
    held_out = np.flatnonzero(table["fold_r1"].to_numpy() == 2)
    model = load(folder / "repeat1_fold2.pt")
    new_bags = FittedPreprocessing.load(preprocessing_path(folder / "repeat1_fold2.pt")).apply(bags.subset(held_out))
    eta = model.predict(new_bags, table[["age"]].to_numpy(float)[held_out]).linear_predictor[:, 0]
    fold = predictions.query("label == 'dosage' and model == 'mixmil' and repeat == 1 and fold == 2")
    np.testing.assert_allclose(eta, fold.set_index("bag").loc[table["donor"].to_numpy()[held_out], "linear_predictor"])
