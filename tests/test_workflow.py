"""The Snakemake workflow: dry runs, lint, config validation and end-to-end runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mixmil_workflow.io import read_table
from tests.job_envs import assert_jobs_used_only_their_envs
from tests.report_browser import missing_browser, report_figures_render

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    counts, in_table = {}, False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and parts and parts[0] == "total":
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize(
    "configfile",
    [
        "config/config.yaml",
        "config/paper.yaml",
        "config/table_e1.yaml",
        "config/fig2_check.yaml",
        "config/mean_field_check.yaml",
        "config/fig_e1_trees_check.yaml",
    ],
)
def test_dry_run_plans_every_scenario_model_and_repeat(configfile, tmp_path):
    config = yaml.safe_load((REPO / configfile).read_text())
    sim = config["simulation"]
    defaults = sim["defaults"]
    n_scenarios = 1 + sum(v != defaults[axis] for axis, values in sim["axes"].items() for v in values)
    result = snakemake("-n", "--configfile", str(REPO / configfile), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    assert counts["simulate_data"] == n_scenarios * sim["n_repeats"]
    per_model = [len(config["models"][m].get("scenarios", [None] * n_scenarios)) for m in sim["models"]]
    assert counts["fit_simulation"] == sim["n_repeats"] * sum(per_model)
    assert counts["aggregate_simulation"] == 1 and counts["simulation_figures"] == 1
    microscopy = config.get("microscopy", {})
    if microscopy.get("activate"):
        plates = microscopy.get("plates") or microscopy.get("demo", {}).get("plates", [None] * 3)
        assert counts["embed_bbbc021"] == counts["crop_bbbc021"] == len(plates)
        assert counts["fit_microscopy"] == len(microscopy["models"]) * microscopy["n_repeats"]
    momil = config.get("momil", {})
    assert counts.get("momil_simulation", 0) == (momil.get("n_repeats", 3) if momil.get("activate") else 0)
    smmile = config.get("smmile", {})
    studies = len(smmile.get("studies", ["simulation"]))
    n_fits = studies * smmile.get("n_repeats", 3) * len(smmile.get("models", {})) if smmile.get("activate") else 0
    assert counts.get("fit_spatial", 0) == n_fits


def test_a_model_spec_threads_sets_its_training_jobs_threads(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["models"]["rf_mean"]["threads"] = 3
    path = tmp_path / "threads.yaml"
    path.write_text(yaml.safe_dump(config))

    def fit_threads(cores: str) -> dict[str, set[int]]:
        out = snakemake("-n", "--cores", cores, "--configfile", str(path), "--directory", str(tmp_path)).stdout
        threads: dict[str, set[int]] = {}
        for job in out.split("\nrule fit_simulation:")[1:]:
            model = re.search(r"wildcards: model=(\w+)", job).group(1)
            found = re.search(r"^    threads: (\d+)$", job.split("\n\n")[0], re.M)
            threads.setdefault(model, set()).add(int(found.group(1)) if found else 1)
        return threads

    planned = fit_threads("8")
    assert planned["rf_mean"] == {3} and planned["abmil"] == {1} and planned["xgboost_instance"] == {1}
    assert fit_threads("2")["rf_mean"] == {2}  # Snakemake lowers a job's threads to --cores

    config["models"]["rf_mean"]["threads"] = 0
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0 and "0 is less than the minimum of 1" in result.stdout + result.stderr


def test_only_torch_models_training_jobs_ask_for_a_gpu(tmp_path):
    out = snakemake("-n", "--cores", "8", "--configfile", str(TINY), "--directory", str(tmp_path)).stdout
    gpus: dict[str, set[int]] = {}
    for job in out.split("\nrule fit_simulation:")[1:]:
        model = re.search(r"wildcards: model=(\w+)", job).group(1)
        gpus.setdefault(model, set()).add(int(re.search(r"resources: .*\bgpu=(\d+)", job).group(1)))
    config = yaml.safe_load(TINY.read_text())
    cpu_only = {m for m in gpus if config["models"][m]["type"] in ("glmm", "random_forest", "xgboost")}
    assert {"glmm", "rf_mean", "xgboost_instance"} <= cpu_only and {"mixmil", "abmil"} <= set(gpus) - cpu_only
    assert all(gpus[m] == {0} for m in cpu_only), gpus
    assert all(gpus[m] == {1} for m in set(gpus) - cpu_only), gpus


def test_momil_configuration_plans_its_repeats(tmp_path):
    config = yaml.safe_load((REPO / "config/momil.yaml").read_text())
    result = snakemake("-n", "--configfile", str(REPO / "config/momil.yaml"), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    assert counts == {"momil_simulation": config["momil"]["n_repeats"], "momil_summary": 1, "all": 1}


def test_smmile_configuration_plans_its_models_and_repeats(tmp_path):
    config = yaml.safe_load((REPO / "config/smmile.yaml").read_text())["smmile"]
    result = snakemake("-n", "--configfile", str(REPO / "config/smmile.yaml"), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    n, studies, slides = config["n_repeats"], config["studies"], 60  # the demo slides' default count
    assert studies == ["simulation", "camelyon16"]
    assert counts == {
        "spatial_simulation": n,
        "camelyon16_slides_demo": 1,
        "camelyon16_slide_features": slides,
        "camelyon16_slides_dataset": 1,
        "fit_spatial": len(studies) * n * len(config["models"]),
        "spatial_summary": len(studies),
        "all": 1,
    }


def test_workflow_lint_and_formatting():
    lint = snakemake("--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    paths = ["src", "scripts", "tests", "benchmarks"]
    ruff = subprocess.run([str(BIN / "ruff"), "check", *paths], cwd=REPO, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout
    ruff_fmt = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert ruff_fmt.returncode == 0, ruff_fmt.stdout


def test_invalid_config_is_rejected_naming_the_field(tmp_path):
    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["n_repeats"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "0 is less than the minimum of 1" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["models"].append("no_such_model")
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert "simulation.models lists 'no_such_model'" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["simulation"]["reference_model"] = "abmil_not_run"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "simulation.reference_model is 'abmil_not_run'" in result.stdout + result.stderr

    bad = yaml.safe_load(TINY.read_text())
    bad["costs"]["models"].append("rf_mean")
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), check=False)
    assert "costs.models lists 'rf_mean' of type 'random_forest'" in result.stdout + result.stderr


def _check_outputs(workdir: Path, config: dict) -> pd.DataFrame:
    tables = workdir / "results" / "simulation" / "tables"
    figures = workdir / "results" / "simulation" / "figures"
    summary = pd.read_csv(tables / "simulation_summary.tsv", sep="\t", comment="#")
    models = config["simulation"]["models"]
    assert set(summary["model"]) == set(models)
    no_instance_scores = [m for m in models if config["models"][m]["type"] in ("glmm", "random_forest", "xgboost")]
    has_scores = ~summary["model"].isin(no_instance_scores)
    assert summary.loc[has_scores, "instance_auc_mean"].notna().all()
    assert summary.loc[~has_scores, "instance_auc_mean"].isna().all()
    long = pd.read_csv(tables / "simulation_metrics.tsv", sep="\t", comment="#")
    assert long["spearman"].between(-1, 1).all()
    for name in ("fig2_spearman", "fig2_instance_auc", "figE2_retrieval_mean_field", "figE1_traditional"):
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures / f"{name}.svg").stat().st_size > 1000
    assert "mixmil" in (tables / "default_scenario.md").read_text()
    # Every other model against MixMIL on the same outputs, recomputed from the long table.
    from mixmil_workflow.studies.simulation import paired_table

    paired = pd.read_csv(tables / "simulation_paired.tsv", sep="\t", comment="#")
    assert set(paired["model"]) == set(models) - {"mixmil"}
    expected = paired_table(long, "mixmil").round(4)
    pd.testing.assert_frame_equal(paired, expected, check_dtype=False)
    assert "mixmil − model" in (tables / "simulation_paired.md").read_text()
    # The trees' hyperparameters per run and output (fixed by overrides here: the choice is those values).
    chosen = pd.read_csv(tables / "simulation_hyperparameters.tsv", sep="\t", comment="#")
    trees = [m for m in models if config["models"][m]["type"] in ("random_forest", "xgboost")]
    tree_runs = long[long["model"].isin(trees)][["model", "scenario", "repeat", "output"]]
    assert sorted(map(tuple, chosen[tree_runs.columns].to_numpy())) == sorted(map(tuple, tree_runs.to_numpy()))
    for model in trees:
        for name, value in config["models"][model].get("overrides", {}).items():
            assert (chosen.loc[chosen["model"] == model, name] == value).all(), (model, name)
    # Provenance: the same digest of the simulation's config sections on every simulation table, the seed,
    # the code revision and package versions; another digest (other sections) on the costs table.
    digests = set()
    for name in (
        "default_scenario.md",
        "simulation_summary.md",
        "simulation_summary.tsv",
        "simulation_axes.tsv",
        "simulation_paired.tsv",
    ):
        text = (tables / name).read_text()
        found = re.search(r"config sha256 \(models, simulation, seed\): ([0-9a-f]{64}); seed (\d+)", text)
        assert found and int(found.group(2)) == config["seed"], name
        assert "mixmil-workflow " in text and f"numpy {np.__version__}" in text, name
        digests.add(found.group(1))
    assert len(digests) == 1
    costs_text = (workdir / "results" / "costs" / "table1_costs.md").read_text()
    assert re.search(r"config sha256 \(costs, models, simulation, seed\): [0-9a-f]{64}", costs_text)
    for rule in ("simulate", "fit"):
        assert any((workdir / "logs" / "simulation" / rule).rglob("*.log")), f"no logs for {rule}"
    aggregate_log = (workdir / "logs" / "simulation" / "aggregate.log").read_text()
    n_datasets = len(long.groupby(["scenario", "repeat"]))
    assert f"{n_datasets}/{n_datasets} datasets" in aggregate_log  # every run evaluated in the aggregation
    costs = pd.read_csv(workdir / "results" / "costs" / "table1_costs.tsv", sep="\t", comment="#")
    assert list(costs["model"]) == config["costs"]["models"]
    assert (costs[["batch_ms_mean", "predict_ms_mean", "likelihood_parameters"]] > 0).all().all()
    assert "batch time (ms)" in (workdir / "results" / "costs" / "table1_costs.md").read_text()
    if config.get("sweep", {}).get("activate"):
        grid = pd.read_csv(workdir / "results" / "sweep" / "tables" / "sweep_grid.tsv", sep="\t", comment="#")
        for model, values in config["sweep"]["grid"].items():
            rows = grid[grid["model"] == model]
            assert len(rows) == np.prod([len(v) for v in values.values()])
            assert rows["spearman_mean"].between(-1, 1).all()
        metrics = pd.read_csv(workdir / "results/sweep/tables/sweep_metrics.tsv", sep="\t", comment="#")
        assert list(metrics.columns[:4]) == ["model", "combination", "repeat", "output"]
        per_combination = metrics.groupby(["model", "combination", "repeat"])["spearman"].mean().groupby(level=[0, 1])
        np.testing.assert_allclose(grid["spearman_mean"], per_combination.mean().to_numpy(), atol=1e-4)
        selected = yaml.safe_load((workdir / "results" / "sweep" / "selected_models.yaml").read_text())["models"]
        best = grid.loc[grid.groupby("model")["spearman_mean"].idxmax()]
        for row in best.itertuples():
            assert selected[row.model]["lr"] == row.lr
    return summary


def test_tiny_workflow_end_to_end_and_nothing_to_redo(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(tmp_path))
    summary = _check_outputs(tmp_path, config)
    assert assert_jobs_used_only_their_envs(tmp_path) > 20
    assert set(summary["scenario"]) == {"default", "v_gamma-2"}
    # A model restricted to some scenarios runs only there.
    assert set(summary.loc[summary["model"] == "xgboost_instance", "scenario"]) == {"default"}
    again = snakemake("-n", "--configfile", str(TINY), "--directory", str(tmp_path))
    assert "Nothing to be done" in again.stdout + again.stderr
    snakemake("--configfile", str(TINY), "--directory", str(tmp_path), "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    for name in (
        "fig2_spearman.png",
        "fig2_instance_auc.png",
        "figE2_retrieval_mean_field.png",
        "default_scenario.md",
        "table1_costs.md",
    ):
        assert name in html

    # Same config, fresh directory: bit-identical tables (determinism from the config seed).
    other = tmp_path / "again"
    other.mkdir()
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(other))
    for table in ("simulation_metrics.tsv", "simulation_summary.tsv"):
        first = pd.read_csv(tmp_path / "results/simulation/tables" / table, sep="\t", comment="#")
        second = pd.read_csv(other / "results/simulation/tables" / table, sep="\t", comment="#")
        cols = [c for c in first.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(first[cols], second[cols])


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
    summary = _check_outputs(tmp_path, config).set_index(["model", "scenario"])
    mixmil = summary.loc[("mixmil", "default"), "spearman_mean"]
    glmm = summary.loc[("glmm", "default"), "spearman_mean"]
    assert mixmil > glmm + 0.05, (mixmil, glmm)
    assert summary.loc[("mixmil", "default"), "instance_auc_mean"] > 0.8
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
    }
    sizes = report_figures_render(demo_run / "report.html", figures)
    assert len(sizes) == 10
    # Every PNG result the run produced is among those checked.
    produced = {p.relative_to(demo_run).as_posix() for p in (demo_run / "results").rglob("*.png")}
    assert produced == set(sizes), produced ^ set(sizes)
    # The tables are embedded with their provenance.
    html = (demo_run / "report.html").read_text()
    tables = ("default_scenario.md", "table1_costs.md", "table3_auc.md", "table_e2.md", "planted_recovery.md")
    for table in (*tables, "table2.md", "demo_cell_kinds.md"):
        assert f"filename={table};" in html, table


def _camelyon16_download_config(tmp_path, url: str, sha256: str, size: int) -> Path:
    sheet = tmp_path / "sources.tsv"
    sheet.write_text(
        "source\turl\tsha256\tsize_bytes\tdescription\n"
        f"camelyon16_features\t{url}\t{sha256}\t{size}\tgenerated archive served on 127.0.0.1\n"
    )
    config = yaml.safe_load((REPO / "tests/configs/camelyon16_download.yaml").read_text())
    config["camelyon16"]["sheet"] = str(sheet)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_camelyon16_branch_from_a_download_end_to_end(tmp_path):
    """Download (real HTTP on 127.0.0.1, checksum checked) -> conversion -> models x seeds -> Table 3."""
    import hashlib

    from mixmil_workflow.camelyon16 import DemoSpec, write_demo_archive
    from tests.http_server import serve

    www = tmp_path / "www"
    spec = DemoSpec(n_train_normal=10, n_train_tumor=10, n_test_normal=6, n_test_tumor=6, max_patches=40, n_features=24)
    write_demo_archive(www / "features.zip", tmp_path / "truth.tsv.gz", spec, seed=0)
    data = (www / "features.zip").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    workdir = tmp_path / "run"
    with serve(www) as (url, state):
        config = _camelyon16_download_config(tmp_path, f"{url}/features.zip", sha, len(data))
        snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
        assert (workdir / "resources/camelyon16/camelyon16_features.zip").read_bytes() == data
        runs = pd.read_csv(workdir / "results/camelyon16/tables/camelyon16_runs.tsv", sep="\t", comment="#")
        assert len(runs) == 3 * 2 and runs["test_auc"].between(0, 1).all()
        assert assert_jobs_used_only_their_envs(workdir) > 5
        table = pd.read_csv(workdir / "results/camelyon16/tables/table3_auc.tsv", sep="\t", comment="#")
        assert list(table["model"]) == ["mixmil", "glmm", "abmil"] and (table["n_seeds"] == 2).all()
        assert (workdir / "results/camelyon16/figures/roc.svg").stat().st_size > 0
        # The sweep (Table C.7 analogue): each combination scored on the validation slides, lowest loss selected.
        grid = pd.read_csv(workdir / "results/camelyon16/sweep/sweep_grid.tsv", sep="\t", comment="#")
        assert sorted(grid["lr"]) == [0.0001, 0.001] and (grid["validation_loss"] > 0).all()
        selected = yaml.safe_load((workdir / "results/camelyon16/sweep/selected_models.yaml").read_text())["models"]
        assert selected["abmil"]["lr"] == grid.loc[grid["validation_loss"].idxmin(), "lr"]
        # Without the demo's patch truth there is no instance AUC, only the (empty) table.
        assert pd.read_csv(workdir / "results/camelyon16/tables/instance_auc.tsv", sep="\t", comment="#").empty
        again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
        assert "Nothing to be done" in again.stdout + again.stderr
        snakemake("--configfile", str(config), "--directory", str(workdir), "--report", "report.html")
        html = (workdir / "report.html").read_text()
        assert all(name in html for name in ("table3_auc.md", "roc.png", "instance_scores.png"))

        # A checksum that does not match: the download rule fails naming the fix and leaves no archive.
        bad = _camelyon16_download_config(tmp_path, f"{url}/features.zip", "f" * 64, len(data))
        other = tmp_path / "bad"
        result = snakemake("--cores", "1", "--configfile", str(bad), "--directory", str(other), check=False)
    assert result.returncode != 0
    log = (other / "logs/camelyon16/download.log").read_text()
    assert "does not match" in log and "update the sheet" in log
    assert not list((other / "resources/camelyon16").glob("camelyon16_features.zip*"))


def _sheet_config(tmp_path, rows: dict[str, tuple[str, str]], name: str, template: str, section: str) -> Path:
    """A copy of the test config ``template`` whose ``section.sheet`` lists ``rows`` (source -> url, sha256)."""
    sheet = tmp_path / f"{name}.tsv"
    sheet.write_text(
        "source\turl\tsha256\tsize_bytes\tdescription\n"
        + "".join(f"{source}\t{url}\t{sha}\t\tserved on 127.0.0.1\n" for source, (url, sha) in rows.items())
    )
    config = yaml.safe_load((REPO / "tests/configs" / template).read_text())
    config[section]["sheet"] = str(sheet)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _onek1k_download_config(tmp_path, rows: dict[str, tuple[str, str]], name: str) -> Path:
    return _sheet_config(tmp_path, rows, name, "onek1k_download.yaml", "genetics")


def test_genetics_branch_from_a_download_to_the_labels(tmp_path):
    """OneK1K-format files served on 127.0.0.1 -> download rules (sha256 checked) -> cells, scVI,
    genotypes, variant universe, GLMM screen and clumping; a wrong checksum fails and leaves no file."""
    import hashlib

    from mixmil_workflow.genetics.demo import LYMPHOID_ESNP_CODES, OneK1KDemoSpec, write_onek1k_demo
    from tests.http_server import serve

    www = tmp_path / "www"
    paths = write_onek1k_demo(www, OneK1KDemoSpec(n_donors=120, mean_cells=60, n_genes=600, effect=1.5), seed=0)
    # The VCF's index: with tabix installed the dosages are read through it (else the VCF is scanned).
    if shutil.which("tabix"):
        subprocess.run(["tabix", "-C", "-p", "vcf", str(paths["vcf"])], check=True)
    else:
        (www / "OneK1K.noGP.vcf.gz.csi").write_bytes(b"not read without tabix")
    files = {
        "onek1k_h5ad": "onek1k.h5ad",
        "onek1k_vcf": "OneK1K.noGP.vcf.gz",
        "onek1k_vcf_csi": "OneK1K.noGP.vcf.gz.csi",
        **{f"onek1k_esnp_{code}": f"esnp/{code}_esnp_table.tsv.gz" for code in LYMPHOID_ESNP_CODES},
    }
    downloaded = {source: name.removeprefix("esnp/") for source, name in files.items()}
    sha = {source: hashlib.sha256((www / name).read_bytes()).hexdigest() for source, name in files.items()}
    workdir = tmp_path / "run"
    with serve(www) as (url, state):
        rows = {source: (f"{url}/{name}", sha[source]) for source, name in files.items()}
        config = _onek1k_download_config(tmp_path, rows, "good")
        snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
        for source, name in files.items():
            got = workdir / "resources/onek1k/download" / downloaded[source]
            assert got.read_bytes() == (www / name).read_bytes(), name
        assert not (workdir / "resources/onek1k/demo").exists()
        labels = read_table(workdir / "results/genetics/labels/labels.tsv")
        truth = pd.read_csv(paths["truth"], sep="\t").set_index("rsid")
        assert len(labels) >= 2 and truth.loc[labels["rsid"], "role"].isin(["planted", "proxy"]).sum() >= 2
        assert assert_jobs_used_only_their_envs(workdir) >= 11 + 7
        how = "through the index" if shutil.which("tabix") else "scanning the whole VCF"
        assert how in (workdir / "logs/genetics/donor_dosages.log").read_text()
        again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
        assert "Nothing to be done" in again.stdout + again.stderr

        # A VCF checksum that does not match: its download fails naming the fix and leaves no file.
        rows["onek1k_vcf"] = (rows["onek1k_vcf"][0], "0" * 64)
        bad = _onek1k_download_config(tmp_path, rows, "bad")
        other = tmp_path / "bad"
        target = "results/genetics/variants/universe.tsv"
        result = snakemake("--cores", "1", "--configfile", str(bad), "--directory", str(other), target, check=False)
    assert result.returncode != 0
    log = (other / "logs/genetics/download/OneK1K.noGP.vcf.gz.log").read_text()
    assert "does not match" in log and "update the sheet" in log
    assert not list((other / "resources/onek1k/download").glob("OneK1K.noGP.vcf.gz*"))


def _bbbc021_download_config(tmp_path, rows: dict[str, tuple[str, str]], name: str) -> Path:
    return _sheet_config(tmp_path, rows, name, "bbbc021_download.yaml", "microscopy")


def test_microscopy_branch_from_a_download_with_a_simclr_checkpoint(tmp_path):
    """BBBC021-format plate zips, metadata, nucleus database and a SimCLR checkpoint in the reference's
    layout served on 127.0.0.1 -> download rules (sha256 checked) -> illumination, crops, ResNet50
    embeddings from the checkpoint -> PCA -> models -> Tables 2/E.3/E.4 and a montage; a wrong plate
    checksum fails and leaves no file."""
    import hashlib
    import json

    from mixmil_workflow.microscopy.demo import DemoSpec, write_demo
    from tests.http_server import serve
    from tests.test_microscopy import _simclr_checkpoint

    www = tmp_path / "www"
    config_plates = yaml.safe_load((REPO / "tests/configs/bbbc021_download.yaml").read_text())["microscopy"]["plates"]
    spec = DemoSpec(plates=tuple(config_plates), wells_per_treatment=1, sites=1, cells_per_site=6)
    write_demo(www, spec, seed=1)
    _simclr_checkpoint(www / "model_best.pth")
    files = {
        "bbbc021_image_csv": "BBBC021_v1_image.csv",
        "bbbc021_moa_csv": "BBBC021_v1_moa.csv",
        "bbbc021_compound_csv": "BBBC021_v1_compound.csv",
        "bbbc021_nuclei": "ljosa_jbiomolscreen_2013.sqlite",
        "bbbc021_simclr": "model_best.pth",
        **{f"bbbc021_plate_{p}": f"BBBC021_v1_images_{p}.zip" for p in config_plates},
    }
    downloaded = dict(files, bbbc021_simclr="simclr_resnet50.pth")
    sha = {source: hashlib.sha256((www / name).read_bytes()).hexdigest() for source, name in files.items()}
    workdir = tmp_path / "run"
    with serve(www) as (url, state):
        rows = {source: (f"{url}/{name}", sha[source]) for source, name in files.items()}
        config = _bbbc021_download_config(tmp_path, rows, "good")
        snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
        for source, name in files.items():
            got = workdir / "resources/bbbc021/download" / downloaded[source]
            assert got.read_bytes() == (www / name).read_bytes(), name
        assert not (workdir / "resources/bbbc021/demo").exists()
        again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
        assert "Nothing to be done" in again.stdout + again.stderr

        # A plate whose checksum does not match: its download fails and leaves no file.
        plate = config_plates[0]
        rows[f"bbbc021_plate_{plate}"] = (rows[f"bbbc021_plate_{plate}"][0], "0" * 64)
        bad = _bbbc021_download_config(tmp_path, rows, "bad")
        other = tmp_path / "bad"
        target = f"results/microscopy/crops/{plate}.h5"
        result = snakemake("--cores", "1", "--configfile", str(bad), "--directory", str(other), target, check=False)
    assert result.returncode != 0
    log = (other / f"logs/microscopy/download/BBBC021_v1_images_{plate}.zip.log").read_text()
    assert "does not match" in log
    assert not list((other / "resources/bbbc021/download").glob(f"BBBC021_v1_images_{plate}.zip*"))

    assert assert_jobs_used_only_their_envs(workdir) >= 8 + 3 * 4
    results = workdir / "results/microscopy"
    for plate in config_plates:
        meta = json.loads((results / f"embeddings/{plate}.json").read_text())
        assert meta["weights"].startswith("SimCLR checkpoint") and meta["dim"] == 2048
        assert np.load(results / f"embeddings/{plate}.npy").shape == (meta["n_crops"], 2048)
    table2 = read_table(results / "tables/table2.tsv").set_index("model")
    assert list(table2.index) == ["mixmil", "abmil"] and (table2["n_repeats"] == 2).all()
    assert "embeddings: SimCLR checkpoint" in (results / "tables/table2.md").read_text()
    e4 = read_table(results / "tables/table_e4_components.tsv")
    assert sorted(set(e4["pcs"])) == [4, 8]
    assert (results / "figures/fig_e4_latrunculin_B.png").read_bytes()[:4] == b"\x89PNG"
    assert not (results / "tables/demo_cell_kinds.md").exists()  # no truth outside the demo
    grid = read_table(results / "sweep/sweep_grid.tsv")
    assert sorted(grid["lr"]) == [0.0001, 0.01] and (grid["n_repeats"] == 2).all()
    selected = yaml.safe_load((results / "sweep/selected_models.yaml").read_text())["models"]
    assert selected["abmil"]["lr"] == grid.loc[grid["f1_macro"].idxmax(), "lr"]


def test_momil_comparison_through_the_workflow(tmp_path):
    """The MoMIL rules on a small sparse multi-task simulation: every variant scored on the primary tasks
    of every repeat, the selection recorded, and nothing to redo afterwards."""
    config = REPO / "tests/configs/momil.yaml"
    workdir = tmp_path / "run"
    snakemake("--cores", "2", "--configfile", str(config), "--directory", str(workdir))
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
    assert assert_jobs_used_only_their_envs(workdir) >= 3
    again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
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
    assert assert_jobs_used_only_their_envs(workdir) >= 3
    again = snakemake("-n", "--configfile", str(config), "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bring_your_own_bags_under_three_protocols(tmp_path):
    """The generated example dataset through k-fold CV, held-out groups and a given split: every bag
    predicted once per label and model, weights for every instance, the comparison and figure."""
    config = yaml.safe_load((REPO / "tests/configs/datasets_tiny.yaml").read_text())
    path = REPO / "tests/configs/datasets_tiny.yaml"
    snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp_path))
    bags = pd.read_csv(tmp_path / "resources/example_dataset/bags.tsv", sep="\t")
    for name, spec in config["datasets"].items():
        root = tmp_path / "results/datasets" / name
        comparison = pd.read_csv(root / f"{name}_comparison.tsv", sep="\t", comment="#")
        assert len(comparison) == len(spec["labels"]) * len(spec["models"])
        assert comparison["value"].notna().all()
        predictions = pd.read_csv(root / "out_of_fold_predictions.tsv", sep="\t")
        n_expected = (bags["split"] == "test").sum() if spec["protocol"]["kind"] == "split" else len(bags)
        for _, group in predictions.groupby(["label", "model"]):
            assert len(group) == n_expected and group["bag"].is_unique
        assert (root / f"{name}_comparison.png").stat().st_size > 0
    # Held-out groups: no pool is split across folds.
    prepared = pd.read_csv(tmp_path / "results/datasets/pools/prepared/bags.tsv", sep="\t")
    assert prepared.groupby("pool")["fold"].nunique().eq(1).all()
    # Every cell gets the weight of the model that held its donor out; weights sum to one per donor.
    weights = pd.read_csv(tmp_path / "results/datasets/cv/instance_weights.tsv.gz", sep="\t")
    assert len(weights) == weights["obs_name"].nunique() == anndata_rows(tmp_path)
    np.testing.assert_allclose(weights.groupby("bag")["dosage:mixmil"].sum(), 1, rtol=1e-4)
    assert "dosage:glmm" not in weights  # the GLMM has no instance weights
    single = weights[weights["bag"] == "donor_000"]  # the example's single-cell donor: weight exactly 1
    assert len(single) == 1 and single["dosage:mixmil"].iloc[0] == pytest.approx(1.0)
    assert assert_jobs_used_only_their_envs(tmp_path) > 10

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


def test_example_dataset_config_plans_every_label_model_and_fold(tmp_path):
    config = yaml.safe_load((REPO / "config/example_dataset.yaml").read_text())
    result = snakemake("-n", "--configfile", str(REPO / "config/example_dataset.yaml"), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    spec = config["datasets"]["example"]
    assert counts["fit_dataset"] == len(spec["labels"]) * len(spec["models"]) * spec["protocol"]["n_folds"]
    assert counts["example_dataset"] == counts["prepare_dataset"] == counts["compare_dataset"] == 1


def test_a_run_killed_mid_training_resumes_to_identical_results(tmp_path):
    """Hard-kill the whole run (as a node failure would) while a training job runs, unlock, rerun: the
    tables equal those of an uninterrupted run, bit for bit (also the determinism check for datasets)."""
    import os
    import signal
    import time

    config = yaml.safe_load((REPO / "tests/configs/datasets_tiny.yaml").read_text())
    config["models"]["mixmil"]["n_epochs"] = 600  # several seconds per fold: the kill lands mid-training
    config["datasets"] = {
        "cv": {**config["datasets"]["cv"], "labels": {"dosage": {"likelihood": "binomial", "n_trials": 2}}}
    }
    config["datasets"]["cv"]["models"] = ["mixmil"]
    config["datasets"]["cv"]["protocol"] = {"kind": "kfold", "n_folds": 2}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    snakemake("--cores", "1", "--configfile", str(path), "--directory", str(whole))

    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--cores", "1", "--configfile", str(path)]
    run = subprocess.Popen(
        [*command, "--directory", str(killed)], cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = killed / "logs/datasets/cv/fit/dosage/mixmil/fold0.log"
    deadline = time.time() + 300
    while not (log.exists() and "trained" not in log.read_text() and log.stat().st_size > 0):
        assert time.time() < deadline and run.poll() is None, "the run ended before training started"
        time.sleep(0.1)
    time.sleep(1.0)  # inside the training loop
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert "trained" not in log.read_text()  # the job died inside fit()
    assert not (killed / "results/datasets/cv/predictions/dosage/mixmil/fold0.tsv").exists()
    assert not list((killed / "results/datasets/cv/predictions/dosage/mixmil").glob("*.tmp"))  # no temp files
    snakemake("--unlock", "--configfile", str(path), "--directory", str(killed))
    snakemake("--cores", "1", "--configfile", str(path), "--directory", str(killed))
    for name in ("cv_comparison.tsv", "out_of_fold_predictions.tsv"):
        first = pd.read_csv(whole / "results/datasets/cv" / name, sep="\t", comment="#")
        second = pd.read_csv(killed / "results/datasets/cv" / name, sep="\t", comment="#")
        columns = [c for c in first.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(first[columns], second[columns], check_exact=True)


def test_reruns_touch_exactly_the_changed_stage_and_what_follows(tmp_path):
    """Change (1) a model parameter in the config, (2) one script's code or a package module it imports, (3)
    one input file: a dry run plans exactly that stage and its downstream jobs, nothing upstream."""
    import os

    workflow = tmp_path / "workflow"
    workflow.mkdir()
    for part in ("Snakefile", "rules", "scripts", "report", "config", "envs", "src", "profiles"):
        source = REPO / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, workflow / part)
    config = yaml.safe_load((REPO / "tests/configs/datasets_tiny.yaml").read_text())
    config["datasets"] = {"cv": {**config["datasets"]["cv"], "models": ["glmm", "abmil"]}}
    config["datasets"]["cv"]["labels"] = {"disease": {"likelihood": "bernoulli"}}
    config["datasets"]["cv"]["protocol"] = {"kind": "kfold", "n_folds": 2}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"

    def planned(config_path: Path = path) -> dict[str, int]:
        result = subprocess.run(
            [SNAKEMAKE, "--snakefile", str(workflow / "Snakefile"), "-n", "--configfile", str(config_path),
             "--directory", str(run)],
            cwd=workflow, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return {k: v for k, v in job_counts(result.stdout + result.stderr).items() if k != "all"}

    subprocess.run(
        [SNAKEMAKE, "--snakefile", str(workflow / "Snakefile"), "--cores", "2", "--configfile", str(path),
         "--directory", str(run)],
        cwd=workflow, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert planned() == {}

    # (1) A training parameter of one model: its fits and the comparison, not the data preparation.
    changed = yaml.safe_load(path.read_text())
    changed["models"]["abmil"]["n_epochs"] = 3
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert planned(tmp_path / "changed.yaml") == {"fit_dataset": 2, "compare_dataset": 1}

    # (2) The code of one script: that rule only (it is the last stage).
    script = workflow / "scripts/datasets/compare.py"
    original, times = script.read_text(), script.stat()
    script.write_text(original + "\n# a changed line\n")
    assert planned() == {"compare_dataset": 1}
    script.write_text(original)
    os.utime(script, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert planned() == {}

    # (2b) A package module: exactly the rules whose scripts import it (here the example-data generator, so
    # its rule and everything after it) ...
    module = workflow / "src/mixmil_workflow/own_bags/example.py"
    original = module.read_text()
    module.write_text(original + "\n# a changed line\n")
    assert planned() == {"example_dataset": 1, "prepare_dataset": 1, "fit_dataset": 4, "compare_dataset": 1}
    module.write_text(original)
    assert planned() == {}
    # ... and a module no rule of this configuration runs: nothing.
    unused = workflow / "src/mixmil_workflow/camelyon16/slides.py"
    unused.write_text(unused.read_text() + "\n# a changed line\n")
    assert planned() == {}

    # (3) One input file: everything from the stage that reads it, nothing before it.
    table = run / "resources/example_dataset/bags.tsv"
    table.write_text(table.read_text().replace("\t0\t", "\t1\t", 1))
    plan = planned()
    assert plan == {"prepare_dataset": 1, "fit_dataset": 4, "compare_dataset": 1}
    assert "example_dataset" not in plan
