"""The README and docs/ match the code: short README, every page linked, links resolve, every code block of
the README runs (or says why not), and the numbers it cites equal the recorded results."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"(?:<!--(?P<marker>[^>]*)-->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


def _markdown_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (the header, the rule, the body rows)."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]


def _blocks():
    return [(m["lang"], m["code"], (m["marker"] or "").strip()) for m in FENCE.finditer(README.read_text())]


def test_readme_is_short_and_links_every_docs_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#]+)\)", text))
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


@pytest.mark.parametrize("page", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_every_readme_code_block_runs_or_says_why_not(tmp_path):
    ran = 0
    for lang, code, marker in _blocks():
        if marker.startswith("not run here:"):
            assert len(marker) > len("not run here:") + 10, f"say why a block does not run: {marker!r}"
            continue
        if lang == "python":
            subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)
            ran += 1
        elif lang == "yaml":
            _check_config_block(yaml.safe_load(code))
            ran += 1
        elif lang in ("bash", "sh"):
            subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=REPO, check=True, timeout=120)
            ran += 1
        else:  # a layout sketch or other text
            assert lang == "", f"a {lang} block neither runs nor says why not"
    assert ran >= 2  # the Python API block and the own-bags configuration


def _check_config_block(config: dict) -> None:
    """A configuration shown in the README passes the workflow's own checks (key names, schema, model types
    and hyperparameters) as a config file would."""
    from snakemake.utils import validate

    from mixmil_workflow.models.registry import check_config_options, check_config_types
    from mixmil_workflow.workflow.config_checks import check_config

    schema = REPO / "config" / "config.schema.yaml"
    check_config(config, schema)
    validate(config, schema=str(schema))
    check_config_types(config)
    check_config_options(config)


def ci_timings_minutes(seconds: float) -> str:
    """benchmarks/ci_timings.py's own formatting of a duration (the script is not part of the package)."""
    spec = importlib.util.spec_from_file_location("ci_timings", REPO / "benchmarks/ci_timings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.minutes(seconds)


def test_the_performance_numbers_are_the_recorded_results():
    text = " ".join(README.read_text().split())
    scale = json.loads((REPO / "benchmarks/results/onek1k_scale.json").read_text())
    assert f"{scale['epoch_s']} s per epoch" in text
    assert f"{scale['freeze_predictive_samples_s']} s to freeze" in text
    assert f"{scale['predict_and_weights_s']} s to predict" in text
    assert f"{scale['fit_predict_peak_mb']:,.0f} MB peak" in text
    ci = json.loads((REPO / "benchmarks/results/ci_timings.json").read_text())
    running = (REPO / "docs/running.md").read_text()
    for seconds in (ci["suite_seconds"], ci["demo_run_seconds"]):
        assert ci_timings_minutes(seconds) in running
    assert ci["demo_run_seconds"] < 20 * 60  # the README's promise for `make run` on 2 cores
    # MixMIL against the authors' package: the one-thread record and the two-thread one, as recorded.
    api = " ".join((REPO / "docs/python_api.md").read_text().split())
    for name, threads in (("mixmil_simulation_speed_1thread", 1), ("mixmil_simulation_speed", 2)):
        record = json.loads((REPO / f"benchmarks/results/{name}.json").read_text())
        assert record["machine"]["torch_threads"] == threads == record["machine"].get("torch_threads_at_end", threads)
        assert f"benchmarks/results/{name}.md" in text
        runs = [record["results"][f"mixmil_{kind}"] for kind in ("full_rank", "mean_field")]
        whole = "{:.2f} and {:.2f} times".format(*(run["speedup_same_run"] for run in runs))
        per_epoch = "{:.2f} and {:.2f} times per epoch".format(*(run["interleaved"]["speedup_median"] for run in runs))
        whole_full = f"{runs[0]['speedup_same_run']:.2f} times faster with the full-rank posterior and "
        whole_full += f"{runs[1]['speedup_same_run']:.2f} times with the mean-field one"
        assert (whole_full if threads == 1 else whole) in text
        assert per_epoch in text
        if threads == 1:
            assert "{:.2f}x (full rank) and {:.2f}x (mean field)".format(*(r["speedup_same_run"] for r in runs)) in api
            assert "{:.2f}x and {:.2f}x per epoch".format(*(r["interleaved"]["speedup_median"] for r in runs)) in api
    baselines = json.loads((REPO / "benchmarks/results/baselines_speed.json").read_text())
    names = {"abmil": "ABMIL", "gated_abmil": "Gated ABMIL", "dsmil": "DSMIL", "bayes_mil": "Bayes-MIL"}
    flowing = " ".join(text.split())  # a sentence may wrap between a name and its number
    assert baselines["machine"]["torch_threads"] == 1 and "(663a987), one thread" in flowing
    for row in baselines["rows"]:
        assert f"{names.get(row['model'], 'Additive MIL')} {row['speedup']:.2f}x" in flowing
    assert "benchmarks/results/baselines_speed_2threads.md" in text
    assert f"({baselines['reference']})" in text


def test_recorded_results_in_the_docs_say_what_their_recorded_files_hold():
    """A page that includes a recorded scorecard or result table (its TSV kept under docs/) shows exactly
    that TSV's numbers: rerun `python -m mixmil_workflow.recorded_docs <page>` after recording a new run."""
    from mixmil_workflow.recorded_docs import SCORECARD_BLOCK, has_blocks, render

    pages = [p for p in (REPO / "docs").glob("*.md") if has_blocks(p.read_text())]
    assert any(SCORECARD_BLOCK.search(p.read_text()) for p in pages), "no docs page includes a recorded scorecard"
    for page in pages:
        text = page.read_text()
        assert render(text, page.parent) == text, f"{page.name} differs from its recorded results"


def test_a_recorded_pivot_lays_one_metric_out_by_row_keys_and_models(tmp_path):
    """Fig. 2's layout from the workflow's per-axis table: a row per (axis, value), a column per model in the
    table's order, mean ± s.e.; a model with no value of the metric left out, a missing cell shown as –."""
    import pandas as pd

    from mixmil_workflow.io import save_table
    from mixmil_workflow.recorded_docs import render

    table = pd.DataFrame(
        {
            "axis": ["n_train", "n_train", "n_train", "n_train", "v_beta", "v_beta"],
            "value": [100.0, 1000.0, 100.0, 1000.0, 0.25, 0.25],
            "model": ["mixmil", "mixmil", "glmm", "glmm", "mixmil", "glmm"],
            "instance_auc_mean": [0.61, 0.95, float("nan"), float("nan"), 0.8, float("nan")],
            "instance_auc_se": [0.03, 0.002, float("nan"), float("nan"), 0.01, float("nan")],
            "spearman_mean": [0.3, 0.8, 0.35, 0.57, 0.6, float("nan")],
            "spearman_se": [0.05, 0.01, 0.04, 0.03, 0.03, float("nan")],
        }
    )
    save_table(tmp_path / "axes.tsv", table, provenance={"config_sha256": "ab" * 32, "seed": 0})
    page = "<!-- recorded pivot: axes.tsv spearman by axis,value -->\nold\n<!-- end recorded pivot -->\n"
    shown = render(page, tmp_path)
    rows = _markdown_rows(shown)
    assert rows[0] == ["axis", "value", "mixmil", "glmm"]
    assert rows[2] == [
        "n_train",
        "100",
        "0.300 ± 0.050",
        "0.350 ± 0.040",
    ]
    assert rows[4] == ["v_beta", "0.25", "0.600 ± 0.030", "–"]
    assert (
        "old" not in shown
        and shown.endswith("<!-- end recorded pivot -->\n")
        and "Recorded results: config sha256 abababababab" in shown
    )
    auc = render(page.replace("spearman", "instance_auc"), tmp_path)
    assert "glmm" not in auc and "0.950 ± 0.002" in auc
    assert render(shown, tmp_path) == shown


def test_the_fig2_check_counts_in_the_results_page_are_the_recorded_paired_table():
    """docs/results.md's summary of the Fig. 2 check (how often MixMIL is ahead of the MIL baselines) is
    counted from the recorded paired table, not written by hand."""
    from mixmil_workflow.io import read_table

    paired = read_table(REPO / "docs/recorded/fig2/simulation_paired.tsv")
    baselines = paired[paired["model"] != "glmm"]
    counts = []
    for metric in ("spearman", "instance_auc"):
        ahead = baselines[f"{metric}_difference_mean"] > 0
        everywhere = baselines[f"{metric}_reference_ahead"] == baselines[f"{metric}_n_paired"]
        counts += [int(ahead.sum()), int((ahead & everywhere).sum())]
    sentence = (
        f"MixMIL is ahead of the MIL baseline on average in {counts[0]} of the {len(baselines)} comparisons and on "
        f"every output in {counts[1]} of them; in retrieval AUC on average in {counts[2]}, on every output in "
        f"{counts[3]}"
    )
    assert sentence in " ".join((REPO / "docs/results.md").read_text().split())


def test_the_smmile_claims_in_the_results_page_are_the_recorded_summaries():
    """docs/results.md's test of Fig. 1c (SMMILe's patch AUC above each attention baseline's by more than twice
    the combined s.e.) is counted from the recorded spatial summaries with the workflow's own comparison."""
    from mixmil_workflow.io import read_table
    from mixmil_workflow.models.registry import spec_type
    from mixmil_workflow.studies.smmile import patch_expectation

    models = yaml.safe_load((REPO / "config/smmile.yaml").read_text())["smmile"]["models"]
    families = {name: spec_type(spec).family for name, spec in models.items()}

    def beats_all(study: str) -> dict[str, bool]:
        table = patch_expectation(read_table(REPO / f"docs/recorded/smmile/spatial_{study}.tsv"), families)
        return table.groupby("smmile", sort=False)["smmile_higher"].all().to_dict()

    simulated = [beats_all(s) for s in ("simulation", "simulation_multiclass", "simulation_multilabel")]
    pairs = sum(sum(family.values()) for family in simulated)
    every_family = all(any(family.values()) for family in simulated)
    page = " ".join((REPO / "docs/results.md").read_text().split())
    assert every_family and f"it holds against all four baselines in {pairs} of the 9 (variant, family) pairs" in page
    camelyon16 = patch_expectation(read_table(REPO / "docs/recorded/smmile/spatial_camelyon16.tsv"), families)
    higher = camelyon16[camelyon16["smmile_higher"]]
    assert len(higher) == 6 and set(higher["smmile"]) == {"smmile", "smmile_stage1"}  # "both SMMILe variants"
    assert set(higher["baseline"]) == {"abmil", "dsmil", "mixmil"}
    assert "both SMMILe variants beat ABMIL, DSMIL and MixMIL by more than twice the s.e." in page


def test_a_recorded_table_shows_counts_with_gaps_as_counts(tmp_path):
    """A count column with a missing value (read back as float, and shown as text beside the "–") is shown
    as whole numbers, not 9.000; a measured float column is not."""
    import pandas as pd

    from mixmil_workflow.io import save_table
    from mixmil_workflow.recorded_docs import table_markdown

    table = pd.DataFrame({"model": ["a", "b"], "ahead": [9.0, float("nan")], "seconds": [0.5, float("nan")]})
    save_table(tmp_path / "t.tsv", table, provenance={"config_sha256": "cd" * 32, "seed": 0})
    rows = _markdown_rows(table_markdown(tmp_path / "t.tsv"))
    assert rows[2] == ["a", "9", "0.500"] and rows[3] == ["b", "–", "–"]


def test_a_recorded_table_picks_columns_and_joins_a_mean_with_its_se(tmp_path):
    """``columns`` picks and orders what a block shows; a metric written as ``<x>`` / ``<x>_se`` (the spatial
    study's tables) is one "mean ± s.e." column like ``<x>_mean`` / ``<x>_se``; an unknown name is an error
    naming the file and the columns it has."""
    import pandas as pd

    from mixmil_workflow.io import save_table
    from mixmil_workflow.recorded_docs import render, table_markdown

    table = pd.DataFrame(
        {
            "model": ["smmile", "abmil"],
            "slide_auc": [0.97, 0.81],
            "slide_auc_se": [0.011, 0.02],
            "f1": [0.75, 0.05],
            "f1_se": [0.01, 0.002],
            "n_repeats": [3, 3],
        }
    )
    save_table(tmp_path / "s.tsv", table, provenance={"config_sha256": "12" * 32, "seed": 0})
    rows = _markdown_rows(table_markdown(tmp_path / "s.tsv"))
    assert rows[0] == ["model", "slide_auc", "f1", "n_repeats"] and rows[2] == [
        "smmile",
        "0.970 ± 0.011",
        "0.750 ± 0.010",
        "3",
    ]
    page = "<!-- recorded table: s.tsv columns model,f1 -->\nold\n<!-- end recorded table -->\n"
    rows = _markdown_rows(render(page, tmp_path))
    assert rows[0] == ["model", "f1"] and rows[3] == ["abmil", "0.050 ± 0.002"]
    with pytest.raises(ValueError, match=r"s\.tsv: no column\(s\) \['mimic_auc'\]"):
        table_markdown(tmp_path / "s.tsv", ["model", "mimic_auc"])


def test_the_table1_ratios_in_the_results_page_are_the_recorded_costs():
    """The step-time ratios docs/results.md cites for Table 1 are those of the recorded cost table."""
    from mixmil_workflow.io import read_table

    step_ms = read_table(REPO / "docs/recorded/table_e1/table1_costs.tsv").set_index("model")["batch_ms_mean"]
    ratios = (step_ms["abmil"] / step_ms["mixmil"], step_ms["bayes_mil"] / step_ms["mixmil"])
    sentence = "MixMIL's step is {:.1f}x faster than ABMIL's and {:.1f}x faster than Bayes-MIL's".format(*ratios)
    assert sentence in " ".join((REPO / "docs/results.md").read_text().split())


def test_a_recorded_pivot_of_a_paired_difference_says_on_how_many_units_the_reference_is_ahead(tmp_path):
    import pandas as pd

    from mixmil_workflow.io import save_table
    from mixmil_workflow.recorded_docs import pivot_markdown

    paired = pd.DataFrame(
        {
            "model": ["glmm", "abmil"],
            "scenario": ["default", "default"],
            "spearman_difference_mean": [0.236, 0.592],
            "spearman_difference_se": [0.027, 0.067],
            "spearman_reference_ahead": [3, 2],
            "spearman_n_paired": [3, 3],
            "instance_auc_difference_mean": [float("nan"), 0.28],
            "instance_auc_difference_se": [float("nan"), 0.05],
            "instance_auc_reference_ahead": [float("nan"), 3.0],
            "instance_auc_n_paired": [0, 3],
        }
    )
    save_table(tmp_path / "p.tsv", paired, provenance={"config_sha256": "ef" * 32, "seed": 0})
    rows = _markdown_rows(pivot_markdown(tmp_path / "p.tsv", "spearman_difference", ["scenario"]))
    assert rows[0] == ["scenario", "glmm", "abmil"] and rows[2] == [
        "default",
        "0.236 ± 0.027 (3/3)",
        "0.592 ± 0.067 (2/3)",
    ]
    auc = pivot_markdown(tmp_path / "p.tsv", "instance_auc_difference", ["scenario"])
    assert "glmm" not in auc and "0.280 ± 0.050 (3/3)" in auc


def test_the_paper_grid_cost_in_the_running_page_is_the_recorded_benchmark():
    record = json.loads((REPO / "benchmarks/results/paper_grid_cost.json").read_text())
    hours = {row["model"]: row["cpu_hours"] for row in record["rows"]}
    trees = sum(h for name, h in hours.items() if name.startswith(("rf_", "xgboost_")))
    others = record["total_cpu_hours"] - trees
    text = " ".join((REPO / "docs/running.md").read_text().split())
    assert f"is about {round(record['total_cpu_hours'], -1):,.0f} CPU-hours" in text
    assert f"{trees / record['total_cpu_hours']:.0%} of it are the Random Forest and XGBoost" in text
    biggest = (hours["xgboost_moments"], hours["rf_instance"])
    assert "alone about {:.0f} h, the instance-level Random Forest about {:.0f} h".format(*biggest) in text
    assert f"together take about {others:.0f} h" in text and f"at about {others:.0f} CPU-hours" in text
