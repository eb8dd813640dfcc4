"""Dry runs of the shipped configurations: what each plans, the jobs' threads and GPUs, lint and format."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support.workflow import BIN, REPO, TINY, job_counts, snakemake


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
    # one job per scenario simulates its repeats; one per model and scenario fits them
    assert counts["simulate_data"] == n_scenarios
    per_model = [len(config["models"][m].get("scenarios", [None] * n_scenarios)) for m in sim["models"]]
    assert counts["fit_simulation"] == sum(per_model)
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
    if "simulation" in smmile.get("studies", ["simulation"]):
        studies += len(smmile.get("simulation_tasks", ["binary"])) - 1
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
    expected = {"momil_simulation": config["momil"]["n_repeats"], "momil_summary": 1, "scorecard": 1, "all": 1}
    assert counts == expected  # every run writes its reproduction scorecard


def test_smmile_configuration_plans_its_models_and_repeats(tmp_path):
    config = yaml.safe_load((REPO / "config/smmile.yaml").read_text())["smmile"]
    result = snakemake("-n", "--configfile", str(REPO / "config/smmile.yaml"), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    n, studies, slides = config["n_repeats"], config["studies"], 60  # the demo slides' default count
    tasks = config["simulation_tasks"]
    assert studies == ["simulation", "camelyon16"] and tasks == ["binary", "multiclass", "multilabel"]
    assert counts == {
        "spatial_simulation": n * len(tasks),  # each task family is a study of its own
        "camelyon16_slides_demo": 1,
        "camelyon16_slide_features": slides,
        "camelyon16_slides_dataset": 1,
        "fit_spatial": (len(tasks) + 1) * n * len(config["models"]),
        "spatial_summary": len(tasks) + 1,
        "scorecard": 1,  # every run writes its reproduction scorecard
        "all": 1,
    }
    assert {"smmile", "abmil", "dsmil", "additive_mil", "mixmil"} <= {m["type"] for m in config["models"].values()}


def test_example_dataset_config_plans_every_label_model_and_fold(tmp_path):
    config = yaml.safe_load((REPO / "config/example_dataset.yaml").read_text())
    result = snakemake("-n", "--configfile", str(REPO / "config/example_dataset.yaml"), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    spec = config["datasets"]["example"]
    # a small dataset: one job per label and model runs all of its folds and repeats
    assert counts["fit_dataset"] == len(spec["labels"]) * len(spec["models"])
    fold_jobs = yaml.safe_load((REPO / "config/example_dataset.yaml").read_text())
    fold_jobs["datasets"]["example"]["fits_per_job"] = "fold"
    (tmp_path / "fold_jobs.yaml").write_text(yaml.safe_dump(fold_jobs))
    result = snakemake("-n", "--configfile", str(tmp_path / "fold_jobs.yaml"), "--directory", str(tmp_path))
    protocol = spec["protocol"]
    n_fits = protocol["n_folds"] * protocol["n_repeats"]
    assert (
        job_counts(result.stdout + result.stderr)["fit_dataset"] == len(spec["labels"]) * len(spec["models"]) * n_fits
    )
    assert counts["example_dataset"] == counts["prepare_dataset"] == counts["compare_dataset"] == 1


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


def test_parsing_the_workflow_imports_no_torch(tmp_path):
    """The scheduler reads the plan without the models' stack: a dry run imports no torch."""
    result = subprocess.run(
        [str(BIN / "python"), "-X", "importtime", "-m", "snakemake", "-n", "--cores", "1",
         "--configfile", "config/config.yaml", "--directory", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "import time:" in line}
    assert "snakemake" in imported and "mixmil_workflow.models.registry" in imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


def test_the_workflow_plan_is_light_and_states_no_default_twice():
    """rules/common.smk stays short (each branch plans itself in rules/plan/), and no rule or script repeats a
    config default the schema gives (``.get("key", <literal>)``): validation fills every default once."""
    assert len((REPO / "rules/common.smk").read_text().splitlines()) <= 150
    import re

    literal_default = re.compile(r"\.get\(\s*[\"']\w+[\"']\s*,\s*(?!None\b)[^)\s]")
    found = []
    for path in [*REPO.glob("rules/**/*.smk"), *REPO.glob("scripts/**/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if literal_default.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_documented_repeated_and_nested_cv_example_plans(tmp_path):
    """config/README.md's complete example of repeated and nested CV is a valid configuration."""
    text = (REPO / "config/README.md").read_text()
    block = (
        text.split("A complete repeated and nested cross-validation", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    )
    config = yaml.safe_load(block)
    (tmp_path / "example.yaml").write_text(block)
    result = snakemake("-n", "--configfile", str(tmp_path / "example.yaml"), "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    spec = config["datasets"]["example"]
    assert spec["protocol"] == {"kind": "kfold", "n_folds": 10, "n_repeats": 5}
    assert counts["fit_dataset"] == len(spec["labels"]) * len(spec["models"])  # small: one job per model
