"""The reproduction scorecard: the paper's published values beside ours, for whatever the configuration ran.

The published values live in one data file (``reference/paper_values.tsv``: source table or figure,
quantity, model type, setting, value, its error and what kind of error). Each source has a result table of
the workflow that holds our counterpart (``SOURCES``); a configuration that did not run that part has
none, and the scorecard leaves those rows out. A paper row is matched to the configuration's models by
registry type (and, for Table E.1, pooling; MixMIL's full-rank posterior where both forms ran).

Agreement is judged on the combined error: |ours - paper| <= 2 sqrt(e_paper^2 + e_ours^2) with e the
standard error (a standard deviation over n values becomes sd / sqrt(n); a count k of n its binomial
sd sqrt(n p (1 - p))); exact counts agree when equal. Timings depend on the hardware (the paper's V100
against whatever ran here) and are shown but not judged.

Torch-free: the workflow's driver reads ``SOURCES`` to plan the rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.workflow.provenance import header_provenance

PAPER_VALUES = Path(__file__).parent / "reference" / "paper_values.tsv"
HARDWARE_DEPENDENT = frozenset({"batch_ms", "predict_ms"})
COLUMNS = [
    "source", "quantity", "model", "setting", "paper", "paper_error", "ours", "ours_error", "difference",
    "combined_error", "agree", "our_model", "our_table", "config_sha256", "revision",
]  # fmt: skip


@dataclass(frozen=True)
class Source:
    """A published table or figure and where its counterpart lies: a result table per configuration
    section that produces it (the first whose section is on)."""

    title: str  # as paper_values.tsv's ``source`` column names it
    files: tuple[tuple[str, str], ...]
    reader: str  # the function of this module that turns the table into our values


SOURCES: dict[str, Source] = {
    "table1": Source(
        "Table 1",
        (("genetics_costs", "results/genetics/tables/table1_costs.tsv"), ("costs", "results/costs/table1_costs.tsv")),
        "_table1",
    ),
    "table_e1": Source("Table E.1", (("simulation", "results/simulation/tables/simulation_summary.tsv"),), "_table_e1"),
    "table_e2": Source("Table E.2", (("genetics", "results/genetics/tables/table_e2.tsv"),), "_table_e2"),
    "fig3": Source("Fig. 3", (("genetics", "results/genetics/tables/fig3_wins.tsv"),), "_fig3"),
    "table2": Source("Table 2", (("microscopy", "results/microscopy/tables/table2.tsv"),), "_by_model"),
    "table_e3": Source(
        "Table E.3", (("microscopy", "results/microscopy/tables/table_e3_f1_per_moa.tsv"),), "_table_e3"
    ),
    "table_e4": Source(
        "Table E.4", (("microscopy", "results/microscopy/tables/table_e4_components.tsv"),), "_table_e4"
    ),
    "table3": Source("Table 3", (("camelyon16", "results/camelyon16/tables/table3_auc.tsv"),), "_table3"),
}


def read_paper_values(path: str | Path = PAPER_VALUES) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", comment="#", dtype={"setting": str}, keep_default_na=False).assign(
        value=lambda t: t["value"].astype(float),
        error=lambda t: pd.to_numeric(t["error"], errors="coerce"),
        n=lambda t: pd.to_numeric(t["n"], errors="coerce"),
    )


def source_tables(parts_on: Mapping[str, bool]) -> dict[str, str]:
    """Source key -> the result table a run writes for it, given which parts of the workflow it runs
    (``simulation``, ``costs``, ``genetics``, ``genetics_costs``, ``microscopy``, ``camelyon16``); sources
    it does not run are left out. The scorecard rule's named inputs."""
    out = {}
    for key, source in SOURCES.items():
        for part, path in source.files:
            if parts_on.get(part, False):
                out[key] = path
                break
    return out


# readers: our table -> rows (model name in the config, setting, quantity, value, error, error kind, n) --------
def _table1(table: pd.DataFrame) -> list[tuple]:
    rows = []
    for _, r in table.iterrows():
        for quantity in ("batch_ms", "predict_ms"):
            rows.append((r["model"], "", quantity, r[f"{quantity}_mean"], r[f"{quantity}_se"], "se", np.nan))
        for quantity in ("likelihood_parameters", "variational_parameters"):
            rows.append((r["model"], "", quantity, float(r[quantity]), 0.0, "exact", np.nan))
    return rows


def _table_e1(table: pd.DataFrame) -> list[tuple]:
    default = table[table["scenario"] == "default"]
    return [
        (r["model"], None, "spearman", r["spearman_mean"], r["spearman_se"], "se", np.nan)
        for _, r in default.iterrows()
    ]


def _table_e2(table: pd.DataFrame, n_labels: float) -> list[tuple]:
    return [
        (r["model"], "", "spearman", r["spearman_mean"], r["spearman_sd"], "sd", n_labels) for _, r in table.iterrows()
    ]


def _fig3(table: pd.DataFrame) -> list[tuple]:
    return [
        (r["baseline"], "", "mixmil_wins", float(r["reference_better"]), np.nan, "binomial", float(r["n_labels"]))
        for _, r in table.iterrows()
    ]


def _by_model(table: pd.DataFrame) -> list[tuple]:
    quantities = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    return [
        (r["model"], "", q, r[f"{q}_mean"], r[f"{q}_se"], "se", np.nan) for _, r in table.iterrows() for q in quantities
    ]


def _table_e3(table: pd.DataFrame) -> list[tuple]:
    return [(r["model"], _moa_key(r["moa"]), "f1", r["f1_mean"], r["f1_se"], "se", np.nan) for _, r in table.iterrows()]


def _table_e4(table: pd.DataFrame) -> list[tuple]:
    quantities = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    return [
        (r["model"], str(int(r["pcs"])), q, r[f"{q}_mean"], r[f"{q}_se"], "se", np.nan)
        for _, r in table.iterrows()
        for q in quantities
    ]


def _table3(table: pd.DataFrame) -> list[tuple]:
    return [(r["model"], "", "auc", r["test_auc_mean"], r["test_auc_se"], "se", np.nan) for _, r in table.iterrows()]


def _moa_key(name: str) -> str:
    """MoA names compared without case, spaces or hyphens ("Cholesterol-lowering" = "cholesterol lowering")."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


# matching ----------------------------------------------------------------------------------------------
def _identity(spec: Mapping) -> tuple[str, str]:
    """(registry type, Table E.1's setting) of a config model entry."""
    from mixmil_workflow.models.registry import spec_type

    entry = spec_type(spec)
    setting = spec.get("pooling", "mean") if "pooling" in entry.options() else ""  # the GLMM's and the trees'
    return entry.name, setting


def _preference(spec: Mapping) -> int:
    """Among several entries of one type, the paper's default form first (MixMIL's full-rank posterior)."""
    return 0 if spec.get("posterior", "full_rank") == "full_rank" else 1


def standard_error(error: float, kind: str, value: float, n: float) -> float:
    if kind in ("se", "exact"):
        return float(error)
    if kind == "sd":
        return float(error) / math.sqrt(n) if n and n > 1 else float("nan")
    if kind == "binomial":
        p = value / n
        return math.sqrt(n * p * (1 - p))
    raise ValueError(f"unknown error kind {kind!r}")


def judge(quantity: str, kind: str, difference: float, combined: float) -> str:
    if quantity in HARDWARE_DEPENDENT:
        return "n/a (hardware)"
    if not np.isfinite(difference):
        return "n/a"
    if kind == "exact":
        return "yes" if difference == 0 else "no"
    if not np.isfinite(combined):
        return "n/a"
    return "yes" if abs(difference) <= 2 * combined + 1e-12 else "no"


def scorecard(
    tables: Mapping[str, str | Path], models: Mapping[str, Mapping], paper: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per published value whose counterpart the configuration produced (``tables``: source ->
    our result table, as :func:`source_tables` lists them; ``models``: the config's model entries)."""
    from mixmil_workflow.io import read_table

    paper = read_paper_values() if paper is None else paper
    identity = {name: _identity(spec) for name, spec in models.items()}
    order = sorted(models, key=lambda name: _preference(models[name]))
    out = []
    for key, path in tables.items():
        table = read_table(path)
        source, reader = SOURCES[key].title, SOURCES[key].reader
        if reader == "_table_e2":
            wins = Path(path).with_name("fig3_wins.tsv")
            n_labels = float(read_table(wins)["n_labels"].iloc[0]) if wins.exists() else float(len(table))
            ours = _table_e2(table, n_labels)
        else:
            ours = globals()[reader](table)
        config, revision = header_provenance(path)
        found = {}
        for model, setting, quantity, value, error, kind, n in ours:
            kind_name, pooling = identity.get(model, (model, ""))  # Fig. 3 names baselines by config name too
            key_setting = pooling if setting is None else setting
            found.setdefault((kind_name, key_setting, quantity), []).append((model, value, error, kind, n))
        for _, row in paper[paper["source"] == source].iterrows():
            setting = _moa_key(row["setting"]) if source == "Table E.3" else row["setting"]
            candidates = found.get((row["model"], setting, row["quantity"]), [])
            if not candidates:
                continue
            model, value, error, kind, n = min(candidates, key=lambda c: order.index(c[0]) if c[0] in order else 0)
            paper_se = standard_error(
                row["error"] if np.isfinite(row["error"]) else 0.0, row["error_kind"], row["value"], row["n"]
            )
            our_se = standard_error(error if np.isfinite(error) else 0.0, kind, value, n)
            difference = value - row["value"]
            combined = math.sqrt(paper_se**2 + our_se**2)
            out.append(
                {
                    "source": source, "quantity": row["quantity"], "model": row["model"], "setting": row["setting"],
                    "paper": row["value"], "paper_error": paper_se, "ours": value, "ours_error": our_se,
                    "difference": difference, "combined_error": combined,
                    "agree": judge(row["quantity"], row["error_kind"], difference, combined),
                    "our_model": model, "our_table": str(path), "config_sha256": config, "revision": revision,
                }
            )  # fmt: skip
    return pd.DataFrame(out, columns=COLUMNS)


# rendering -----------------------------------------------------------------------------------------------
def _pm(value: float, error: float, quantity: str) -> str:
    digits = 0 if quantity in ("likelihood_parameters", "variational_parameters", "mixmil_wins") else 3
    if not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    return text if not np.isfinite(error) or error == 0 else f"{text} ± {error:.{max(digits, 3)}f}"


def summary(card: pd.DataFrame) -> pd.DataFrame:
    """Per source: values compared, judged, agreeing."""
    judged = card["agree"].isin(["yes", "no"])
    return (
        card.assign(judged=judged, agreeing=card["agree"].eq("yes"))
        .groupby("source", sort=False)
        .agg(values=("agree", "size"), judged=("judged", "sum"), agree=("agreeing", "sum"))
        .reset_index()
    )


def display_table(card: pd.DataFrame) -> pd.DataFrame:
    """The Markdown / HTML layout: paper and ours as 'value ± s.e.'."""
    return pd.DataFrame(
        {
            "source": card["source"],
            "quantity": card["quantity"],
            "model": card["our_model"],
            "setting": card["setting"],
            "paper": [
                _pm(v, e, q) for v, e, q in zip(card["paper"], card["paper_error"], card["quantity"], strict=True)
            ],
            "ours": [_pm(v, e, q) for v, e, q in zip(card["ours"], card["ours_error"], card["quantity"], strict=True)],
            "difference": card["difference"].astype(float).round(3),
            "agree": card["agree"],
        }
    )


def intro(card: pd.DataFrame, configfiles: Sequence[str] = ()) -> str:
    """The paragraph above the table: which configuration (``configfiles`` when named: a recorded scorecard
    in the docs; a run's scorecard names the config digests behind its values, which do not change with the
    config file's name), how many values agree."""
    if card.empty:
        return (
            "No published value has a counterpart in this run: it runs none of the parts the paper reports "
            "numbers for (the simulation, the costs, genetics, microscopy, Camelyon16)."
        )
    total = summary(card)
    judged, agree = int(total["judged"].sum()), int(total["agree"].sum())
    digests = sorted(set(card["config_sha256"]) - {""})
    configs = ", ".join(f"`{c}`" for c in configfiles) or "config sha256 " + ", ".join(digests)
    revisions = sorted(set(card["revision"]) - {""})
    return (
        f"Configuration: {configs}; results of {', '.join(revisions) or 'this run'}. {len(card)} published "
        f"values have a counterpart in this run; {agree} of the {judged} judged agree within twice the combined "
        "standard error (timings are not judged: the paper's are on a V100). A reduced configuration (the demo) "
        "is not expected to agree: it runs fewer repeats, outputs, epochs and features than the paper."
    )


def html(card: pd.DataFrame, provenance_lines: list[str] | None = None, configfiles: Sequence[str] = ()) -> str:
    """The scorecard as a page: the introduction, the summary per source, every value (sortable)."""
    from mixmil_workflow.html_tables import page, paragraph, table_html

    sections = [
        paragraph(intro(card, configfiles)),
        "<h2>Per source</h2>",
        table_html(summary(card), sortable=False),
        "<h2>Every value <small>(click a column to sort)</small></h2>",
        table_html(display_table(card)),
    ]
    return page("Reproduction scorecard", sections, provenance_lines)


def markdown(card: pd.DataFrame, configfiles: Sequence[str] = ()) -> str:
    """The scorecard as Markdown: the introduction, the summary per source and every value."""
    return "\n\n".join(
        [intro(card, configfiles), summary(card).to_markdown(index=False), display_table(card).to_markdown(index=False)]
    )
