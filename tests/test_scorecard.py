"""The reproduction scorecard: the published values file, matching our tables to it, the judgement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixmil_workflow.io import save_table
from mixmil_workflow.models.registry import model_types
from mixmil_workflow.scorecard import (
    SOURCES,
    header_provenance,
    html,
    read_paper_values,
    scorecard,
    source_tables,
    standard_error,
)
from mixmil_workflow.workflow.provenance import config_provenance

MODELS = {
    "mixmil": {"type": "mixmil"},
    "mixmil_mean_field": {"type": "mixmil", "posterior": "mean_field"},
    "glmm": {"type": "glmm"},
    "glmm_instance": {"type": "glmm", "pooling": "instance"},
    "c16_abmil": {"type": "abmil"},
    "c16_mixmil": {"type": "mixmil"},
}


def test_the_published_values_file_is_complete_and_well_formed():
    paper = read_paper_values()
    assert set(paper["source"]) == {s.title for s in SOURCES.values()}
    assert set(paper["model"]) <= set(model_types())
    assert set(paper["error_kind"]) <= {"se", "sd", "binomial", "exact"}
    counts = paper.groupby("source").size()
    # Table 1: 5 models x 4 columns; E.1: 7 rows; E.2: 5; Fig. 3: 4 baselines; Table 2: 6 x 3; E.3: 12 MoAs
    # x 6 models; E.4: 6 models x 3 sizes x 3 metrics; Table 3: 5.
    expected = {"Table 1": 20, "Table E.1": 7, "Table E.2": 5, "Fig. 3": 4, "Table 2": 18, "Table E.3": 72,
                "Table E.4": 54, "Table 3": 5}  # fmt: skip
    assert counts.to_dict() == expected
    assert not paper.duplicated(["source", "quantity", "model", "setting"]).any()
    mixmil = paper[(paper["source"] == "Table 3") & (paper["model"] == "mixmil")].iloc[0]
    assert (mixmil["value"], mixmil["error"]) == (0.977, 0.001)


def test_source_tables_follow_the_parts_a_run_has():
    assert source_tables({}) == {}
    only_simulation = source_tables({"simulation": True})
    assert only_simulation == {"table_e1": "results/simulation/tables/simulation_summary.tsv"}
    # Table 1 comes from the genetics data when the genetics costs ran, else from the costs study.
    assert source_tables({"costs": True})["table1"] == "results/costs/table1_costs.tsv"
    assert source_tables({"costs": True, "genetics_costs": True})["table1"].startswith("results/genetics")


def _write(path, frame):
    save_table(path, frame, config_provenance({"models": MODELS}, 3))
    return path


def test_ours_beside_the_paper_with_a_judgement_on_the_combined_error(tmp_path):
    summary = pd.DataFrame(
        {
            "model": ["mixmil", "mixmil_mean_field", "glmm", "glmm_instance", "mixmil"],
            "scenario": ["default", "default", "default", "default", "n_train=250"],
            "spearman_mean": [0.83, 0.80, 0.30, 0.57, 0.5],
            "spearman_se": [0.01, 0.01, 0.02, 0.0, 0.1],
        }
    )
    table3 = pd.DataFrame(
        {
            "model": ["c16_abmil", "c16_mixmil"],
            "type": ["abmil", "mixmil"],
            "test_auc_mean": [0.95, 0.90],
            "test_auc_se": [0.01, 0.01],
        }  # fmt: skip
    )
    costs = pd.DataFrame(
        {
            "model": ["mixmil"],
            "batch_ms_mean": [0.9],
            "batch_ms_se": [0.1],
            "predict_ms_mean": [0.2],
            "predict_ms_se": [0.01],
            "likelihood_parameters": [67],
            "variational_parameters": [1000],
        }  # fmt: skip
    )
    tables = {
        "table_e1": _write(tmp_path / "summary.tsv", summary),
        "table3": _write(tmp_path / "table3.tsv", table3),
        "table1": _write(tmp_path / "costs.tsv", costs),
    }
    card = scorecard(tables, MODELS).set_index(["source", "model", "quantity", "setting"])
    e1 = card.loc[("Table E.1", "mixmil", "spearman", "")]
    # the full-rank entry (the paper's MixMIL), not the mean-field one
    assert e1["our_model"] == "mixmil" and e1["ours"] == 0.83 and e1["agree"] == "yes"
    assert card.loc[("Table E.1", "glmm", "spearman", "mean"), "agree"] == "no"  # 0.30 vs 0.58 +- 0.02
    assert card.loc[("Table E.1", "glmm", "spearman", "instance"), "agree"] == "yes"  # 0.57 vs 0.57
    assert card.loc[("Table 3", "abmil", "auc", ""), "agree"] == "yes"  # 0.95 +- 0.01 vs 0.958 +- 0.015
    assert card.loc[("Table 3", "mixmil", "auc", ""), "agree"] == "no"  # 0.90 vs 0.977
    assert card.loc[("Table 1", "mixmil", "likelihood_parameters", ""), "agree"] == "yes"  # 67 = 67
    assert card.loc[("Table 1", "mixmil", "variational_parameters", ""), "agree"] == "no"  # 1000 vs 1890
    assert card.loc[("Table 1", "mixmil", "batch_ms", ""), "agree"] == "n/a (hardware)"
    assert ("Table E.1", "random_forest", "spearman", "mean") not in card.index  # not run: left out
    assert set(card["config_sha256"]) == {config_provenance({"models": MODELS}, 3)["config_sha256"][:12]}
    page = html(card.reset_index(), configfiles=["config/paper.yaml"])
    assert (
        "config/paper.yaml" in page
        and "config sha256" in html(card.reset_index())
        and '<td class="no">no</td>' in page
        and "sortable" in page
    )


def test_standard_errors_of_each_kind():
    assert standard_error(0.02, "se", 0.5, np.nan) == 0.02
    assert standard_error(0.17, "sd", 0.29, 28) == pytest.approx(0.17 / np.sqrt(28))
    assert standard_error(np.nan, "binomial", 27, 28) == pytest.approx(np.sqrt(28 * 27 / 28 / 28))
    with pytest.raises(ValueError, match="error kind"):
        standard_error(1, "ci", 0, 1)


def test_header_provenance_reads_what_save_table_writes(tmp_path):
    path = _write(tmp_path / "t.tsv", pd.DataFrame({"a": [1]}))
    config, revision = header_provenance(path)
    assert len(config) == 12 and revision.startswith("0.")


def test_a_run_without_published_counterparts_gets_a_scorecard_that_says_so():
    from mixmil_workflow.scorecard import markdown

    card = scorecard({}, MODELS)
    assert card.empty and list(card.columns)[:4] == ["source", "quantity", "model", "setting"]
    assert "No published value has a counterpart" in markdown(card)
    assert "No published value" in html(card)
