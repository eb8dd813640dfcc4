"""The README's `make run`: the demo configuration end to end and its report in a browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mixmil_workflow.io import read_table
from tests.support.job_envs import assert_jobs_used_only_their_envs
from tests.support.report_browser import (
    missing_browser,
    report_figures_render,
    report_table_pages,
    report_tables_render,
)
from tests.support.workflow import REPO, check_outputs, snakemake


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """The README's `make run` (the embedded demo, about 15 minutes on 2 cores) and its HTML report."""
    workdir = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "config", workdir / "config")
    snakemake("--cores", "2", "--resources", "gpu=0", "--directory", str(workdir))
    snakemake("--directory", str(workdir), "--report", "report.html")
    return workdir


@pytest.mark.slow
def test_demo_configuration_end_to_end(demo_run):
    tmp_path = demo_run
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert assert_jobs_used_only_their_envs(tmp_path) > 100
    summary = check_outputs(tmp_path, config).set_index(["model", "scenario"])
    mixmil = summary.loc[("mixmil", "default"), "spearman_mean"]
    glmm = summary.loc[("glmm", "default"), "spearman_mean"]
    assert mixmil > glmm + 0.05, (mixmil, glmm)
    assert summary.loc[("mixmil", "default"), "instance_auc_mean"] > 0.8
    _check_saved_models(tmp_path, config)
    _check_scorecard(tmp_path)
    # Table 3 on the demo archive: MixMIL well above chance, and above the mean-pooling GLMM.
    table3 = pd.read_csv(tmp_path / "results/camelyon16/tables/table3_auc.tsv", sep="\t", comment="#").set_index(
        "model"
    )
    assert (table3["n_seeds"] == config["camelyon16"]["n_seeds"]).all()
    assert table3.loc["c16_mixmil", "test_auc_mean"] > 0.85
    assert table3.loc["c16_mixmil", "test_auc_mean"] > table3.loc["c16_glmm", "test_auc_mean"]
    instance = pd.read_csv(tmp_path / "results/camelyon16/tables/instance_auc.tsv", sep="\t", comment="#")
    assert instance.groupby("model")["instance_auc"].mean()["c16_mixmil"] > 0.7
    # Genetics, first stages: lymphoid cells with scVI embeddings, donors' genetic PCs, variant universe.
    import anndata

    genetics = config["genetics"]
    cells = anndata.read_h5ad(tmp_path / "results/genetics/cells/lymphoid_scvi.h5ad")
    assert cells.obsm["X_scvi"].shape == (cells.n_obs, genetics["scvi"]["n_latent"])
    assert cells.n_vars == genetics["n_top_genes"] and set(cells.obs["cell_group"]) == {"CD4", "CD8", "NK"}
    assert (tmp_path / "results/genetics/cells/scvi_model/model.pt").stat().st_size > 0  # the trained scVI
    embeddings = anndata.read_h5ad(tmp_path / "results/genetics/cells/lymphoid_embeddings.h5ad")
    assert embeddings.n_obs == cells.n_obs and embeddings.obsm["X_umap"].shape == (cells.n_obs, 2)
    np.testing.assert_array_equal(embeddings.obsm["X_scvi"], cells.obsm["X_scvi"])
    pcs = read_table(tmp_path / "results/genetics/genotypes/genetic_pcs.tsv")
    assert len(pcs) == genetics["demo"]["n_donors"] and pcs.shape[1] == 1 + genetics["n_genetic_pcs"]
    truth = pd.read_csv(tmp_path / "resources/onek1k/demo/truth.tsv", sep="\t")
    universe = read_table(tmp_path / "results/genetics/variants/universe.tsv")
    assert set(universe["rsid"]) == set(truth.loc[truth["role"].isin(["planted", "proxy", "no_effect"]), "rsid"])
    # The labels: planted loci (the planted variant or a proxy) at most once each, LD partners clumped
    # away; the screen is statistical, the demo (seed 0) recovers all 4, the weakest at rho 0.18 > 0.15.
    labels = read_table(tmp_path / "results/genetics/labels/labels.tsv")
    roles = truth.set_index("rsid").loc[labels["rsid"]]
    linked = roles[roles["role"].isin(["planted", "proxy"])]
    planted_loci = linked["lead"].where(linked["role"] == "proxy", linked.index.to_series())
    assert planted_loci.is_unique and set(planted_loci) <= set(truth.loc[truth["role"] == "planted", "rsid"])
    assert len(planted_loci) >= (truth["role"] == "planted").sum() - 1
    assert (labels["spearman"] > 0.15).all()
    dosages = read_table(tmp_path / "results/genetics/labels/label_dosages.tsv")
    assert list(dosages.columns[1:]) == list(labels["rsid"]) and dosages.iloc[:, 1:].isin([0, 1, 2]).all().all()
    _check_genetics_training(tmp_path, config, labels, truth)
    _check_microscopy(tmp_path, config)
    # SMMILe's multiclass form on the small spatial simulation: its macro patch AUC above the attention maps
    spatial = read_table(tmp_path / "results/smmile/tables/spatial_simulation_multiclass.tsv").set_index("model")
    assert list(spatial.index) == list(config["smmile"]["models"])
    assert {"patch_auc_1", "patch_auc_2", "patch_auc_3", "slide_accuracy"} <= set(spatial.columns)
    assert spatial.loc["smmile", "patch_auc"] > spatial.drop(index="smmile")["patch_auc"].max()
    # Fig. 2 (a): MixMIL above every MIL baseline at every sample size the demo runs them.
    baselines = [m for m in config["simulation"]["models"] if config["models"][m]["type"] not in ("mixmil", "glmm")]
    for baseline in baselines:
        for scenario in config["models"][baseline].get("scenarios", ["default"]):
            mixmil_rho = summary.loc[("mixmil", scenario), "spearman_mean"]
            assert mixmil_rho > summary.loc[(baseline, scenario), "spearman_mean"], (baseline, scenario)


def _check_genetics_training(tmp_path, config, labels, truth):
    """Every model on every label (+ negative controls) with stacked CV: MixMIL recovers the planted
    labels and stays near zero on null variants; Fig. 3, Table E.2, Fig. E.3 and Table 1 agree."""
    genetics, models = config["genetics"], config["models"]
    recovery = read_table(tmp_path / "results/genetics/tables/planted_recovery.tsv")
    assert len(recovery) == len(labels) + genetics["training"]["negative_controls"]
    assert set(recovery.columns) >= set(genetics["models"])
    planted, null = recovery[recovery["simulated"] == "planted"], recovery[recovery["simulated"] == "not_planted"]
    assert len(planted) >= 3 and (planted["mixmil"] > 0.25).all(), planted
    # 120 donors: a null Spearman has s.e. ~0.09
    assert len(null) >= 3 and null["mixmil"].abs().max() < 0.3, null
    assert planted["mixmil"].mean() > null["mixmil"].mean() + 0.3
    baselines = [m for m in genetics["models"] if models[m]["type"] not in ("mixmil", "glmm")]
    wins = read_table(tmp_path / "results/genetics/tables/fig3_wins.tsv")
    assert list(wins["baseline"]) == baselines and (wins["n_labels"] == len(labels)).all()
    e2 = read_table(tmp_path / "results/genetics/tables/table_e2.tsv").set_index("model")
    assert e2["spearman_mean"].idxmax() == "mixmil"
    # Fig. E.3: the top cells of a planted label lie in the cell type whose state the variant moves.
    odds = read_table(tmp_path / "results/genetics/tables/fig_e3_odds_ratios.tsv")
    truth = truth.set_index("rsid")
    group_of = {
        r: truth.loc[truth.loc[r, "lead"] if truth.loc[r, "role"] == "proxy" else r, "group"] for r in truth.index
    }
    shown = odds["label"].unique()
    assert 1 <= len(shown) <= genetics["cell_states"].get("n_examples", 3)
    for label in shown:
        if truth.loc[label, "role"] in ("planted", "proxy"):
            ratios = odds[odds["label"] == label].set_index("cell_type")["odds_ratio"]
            assert ratios.idxmax() == group_of[label] and ratios.max() > 5, (label, ratios)
    costs = read_table(tmp_path / "results/genetics/tables/table1_costs.tsv").set_index("model")
    assert list(costs.index) == [m for m in genetics["models"] if models[m]["type"] != "glmm"]
    q, n_fixed = genetics["scvi"]["n_latent"], 3 + genetics["n_genetic_pcs"]  # intercept, sex, age, PCs
    assert costs.loc["mixmil", "likelihood_parameters"] == n_fixed + 2 * q
    assert costs.loc["mixmil", "variational_parameters"] == 2 * q + q * (2 * q + 1)


def _check_scorecard(tmp_path):
    """The demo's scorecard: a counterpart for each part the demo runs, judged where it can be."""
    card = read_table(tmp_path / "results/scorecard/scorecard.tsv")
    assert {"Table 1", "Table E.1", "Table E.2", "Fig. 3", "Table 2", "Table E.3", "Table 3"} <= set(card["source"])
    assert set(card["agree"]) <= {"yes", "no", "n/a", "n/a (hardware)"}
    assert (card.loc[card["quantity"] == "batch_ms", "agree"] == "n/a (hardware)").all()
    e1 = card[(card["source"] == "Table E.1") & (card["model"] == "mixmil")].iloc[0]
    assert e1["our_model"] == "mixmil" and e1["paper"] == 0.84  # the full-rank entry, beside the paper's 0.84
    assert len(card["revision"].iloc[0]) > 0 and card["config_sha256"].str.len().eq(12).all()
    page = (tmp_path / "results/scorecard/scorecard.html").read_text()
    assert "Reproduction scorecard" in page and "config sha256" in page
    for study in ("simulation", "camelyon16", "genetics", "microscopy"):
        png = tmp_path / f"results/{study}/figures/training_curves.png"
        assert png.read_bytes()[:4] == b"\x89PNG", png


def _check_saved_models(tmp_path, config):
    """save_models' defaults: every data-branch fit kept (one file per fit, loadable by models.load), none of
    the simulation's."""
    from mixmil_workflow.models import load

    results = tmp_path / "results"
    assert not (results / "simulation/models").exists()
    genetics = sorted((results / "genetics/training/models").glob("*/fold*.pt"))
    assert len(genetics) == 5 * len(config["genetics"]["models"])  # 5-fold stacked CV
    section = config["microscopy"]
    microscopy = sorted((results / "microscopy/models").glob("*/pcs*/repeat*.pt"))
    assert len(microscopy) == len(section["models"]) * len(section["pca_components"]) * section["n_repeats"]
    camelyon16 = sorted((results / "camelyon16/models").glob("*/seed*.pt"))
    assert len(camelyon16) == len(config["camelyon16"]["models"]) * config["camelyon16"]["n_seeds"]
    # A kept OneK1K-format fit predicts its held-out donors as the workflow did.
    from mixmil_workflow.genetics.training import genetics_covariates
    from mixmil_workflow.own_bags.study import load_prepared

    data = results / "genetics/training/data"
    bags, table = load_prepared(data / "instances.npy", data / "bags.tsv", "donor_id")
    held_out = np.flatnonzero(table["fold"].to_numpy() == 1)
    covariates = table[genetics_covariates(config["genetics"]["n_genetic_pcs"])].to_numpy(float)[held_out]
    eta = load(results / "genetics/training/models/mixmil/fold1.pt").predict(bags.subset(held_out), covariates)
    saved = read_table(results / "genetics/training/predictions/mixmil/fold1.tsv")
    first = saved[saved["label"] == saved["label"].iloc[0]].set_index("bag")
    np.testing.assert_allclose(eta.linear_predictor[:, 0], first.loc[table["donor_id"].to_numpy()[held_out], "score"])
    assert type(load(results / "camelyon16/models/c16_mixmil/seed0.pt")).__name__ == "MixMIL"


def _check_microscopy(tmp_path, config):
    """BBBC021 demo: every model on every repeat and number of PCs; the planted MoAs are classified well
    above chance (4 MoAs: 0.25); the tables say the embeddings are not SimCLR's; montages and the
    demo's cell-kind table are there."""
    section, results = config["microscopy"], tmp_path / "results/microscopy"
    table2 = read_table(results / "tables/table2.tsv").set_index("model")
    assert list(table2.index) == section["models"] and (table2["n_repeats"] == section["n_repeats"]).all()
    assert table2.loc["mic_mixmil", "balanced_accuracy_mean"] > 0.8, table2
    assert (table2["balanced_accuracy_mean"] > 0.25).sum() >= 4
    assert "random initialisation" in (results / "tables/table2.md").read_text()
    runs = read_table(results / "tables/runs.tsv")
    assert len(runs) == len(section["models"]) * section["n_repeats"] * len(section["pca_components"])
    wells = read_table(results / "data/wells.tsv")
    for repeat in range(section["n_repeats"]):
        held_out = (wells[f"split_r{repeat}"] == "test").sum()
        assert (runs.loc[runs["repeat"] == repeat, "n_wells"] == held_out).all()
    e3 = read_table(results / "tables/table_e3_f1_per_moa.tsv")
    assert e3["moa"].nunique() == 4 and len(e3) == 4 * len(section["models"])
    assert sorted(read_table(results / "tables/table_e4_components.tsv")["pcs"].unique()) == section["pca_components"]
    for compound in section["montage"]["compounds"]:
        png = results / f"figures/fig_e4_{compound.replace(' ', '_')}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", png
    kinds = read_table(results / "tables/demo_cell_kinds.tsv")
    assert set(kinds["model"]) == set(section["models"])
    assert {"percentile:artefact", "percentile:responder", "percentile:control_like"} <= set(kinds.columns)


@pytest.mark.slow
@pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))
def test_demo_report_renders_every_figure_in_headless_chromium(demo_run):
    captions = {}
    for rst in (REPO / "report").glob("*.rst"):
        captions[rst.stem] = " ".join(rst.read_text().split()[:4])
    figures = {
        "Simulation": {
            "results/simulation/figures/fig2_spearman.png": captions["fig2_spearman"],
            "results/simulation/figures/fig2_instance_auc.png": captions["fig2_instance_auc"],
            "results/simulation/figures/figE1_traditional.png": captions["figE1_traditional"],
            "results/simulation/figures/figE2_retrieval_mean_field.png": captions["figE2"],
        },
        "Camelyon16": {
            "results/camelyon16/figures/roc.png": captions["roc_camelyon16"],
            "results/camelyon16/figures/instance_scores.png": captions["instance_scores_camelyon16"],
        },
        "Genetics": {
            "results/genetics/figures/fig3_wins.png": captions["genetics_fig3"],
            "results/genetics/figures/fig_e3_cell_states.png": captions["genetics_fig_e3"],
        },
        "Microscopy": {
            "results/microscopy/figures/fig_e4_nocodazole.png": captions["microscopy_fig_e4"],
            "results/microscopy/figures/fig_e4_cytochalasin_B.png": captions["microscopy_fig_e4"],
        },
        "SMMILe": {"results/smmile/figures/spatial_simulation_multiclass.png": captions["spatial_maps"]},
        "Training curves": {
            f"results/{study}/figures/training_curves.png": captions["training_curves"]
            for study in ("simulation", "camelyon16", "genetics", "microscopy")
        },
    }
    sizes = report_figures_render(demo_run / "report.html", figures)
    assert len(sizes) == 15
    # Every PNG result the run produced is among those checked.
    produced = {p.relative_to(demo_run).as_posix() for p in (demo_run / "results").rglob("*.png")}
    assert produced == set(sizes), produced ^ set(sizes)
    # The tables are embedded as HTML pages, which the report shows inline (Markdown would be a download),
    # each with its provenance; every report table of the run is one.
    html = (demo_run / "report.html").read_text()
    tables = ("default_scenario", "table1_costs", "table3_auc", "table_e2", "planted_recovery", "table2")
    for table in (*tables, "demo_cell_kinds", "spatial_simulation_multiclass", "scorecard"):
        assert f"filename={table}.html;" in html, table
        page = next((demo_run / "results").rglob(f"{table}.html")).read_text()
        assert "<table" in page and "Provenance" in page and "config sha256" in page, table
    assert "filename=table2.md;" not in html
    # Each table page opened in the report one by one: shown inline, rows drawn, its first cell and the
    # provenance visible, a sortable table sorted by a header click.
    pages = report_table_pages(demo_run, REPO / "rules")
    shown = report_tables_render(demo_run / "report.html", pages)
    assert len(shown) == sum(len(p) for p in pages.values()) and min(shown.values()) > 0, shown
    in_report = re.findall(r"filename=([\w.-]+\.html);", html)  # every HTML result the report embeds
    assert sorted(in_report) == sorted(r.rsplit("/", 1)[-1] for r in shown), in_report
    assert {f"{t}.html" for t in tables} <= set(in_report)
