"""Recorded results in the docs: a page shows what a recorded run wrote, regenerated from the files kept
under ``docs/`` rather than pasted, so a number on the page cannot drift from the results it cites.

Two kinds of block, each between its opening comment and ``<!-- end ... -->``:

* ``<!-- scorecard: <tsv> <config file> -->`` ... ``<!-- end scorecard -->``: a reproduction scorecard
  (``results/scorecard/scorecard.tsv``) rendered as the workflow renders it (:func:`scorecard.markdown`);
* ``<!-- recorded table: <tsv> [columns <name>,...] -->`` ... ``<!-- end recorded table -->``: any result
  table (TSV with its ``#`` provenance lines), a mean and its standard error (``<x>_mean`` / ``<x>_se`` or
  ``<x>`` / ``<x>_se``) shown as one "mean ± s.e." column named ``<x>``; ``columns`` picks and orders them;
* ``<!-- recorded pivot: <tsv> <metric> by <column>,... -->`` ... ``<!-- end recorded pivot -->``: one
  metric of a table with a ``model`` column laid out with a row per value of the named columns and a column
  per model (Fig. 2's layout), "mean ± s.e." from ``<metric>_mean`` / ``<metric>_se``; a model without
  any value of the metric (the GLMM's retrieval AUC) is left out. For a difference of the workflow's paired
  table (``<x>_difference``), the cell adds on how many units the reference is ahead, "(k/n)", from
  ``<x>_reference_ahead`` / ``<x>_n_paired``.

Paths are relative to the page. ``python -m mixmil_workflow.recorded_docs <page> ...`` rewrites the
blocks from their files; a test checks that every page says what its files hold.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mixmil_workflow.metrics import format_mean_se

SCORECARD_BLOCK = re.compile(
    r"(?P<open><!-- scorecard: (?P<path>\S+) (?P<config>\S+) -->\n)(?P<body>.*?)(?P<end><!-- end scorecard -->)", re.S
)
TABLE_BLOCK = re.compile(
    r"(?P<open><!-- recorded table: (?P<path>\S+)(?: columns (?P<columns>[\w,]+))? -->\n)(?P<body>.*?)"
    r"(?P<end><!-- end recorded table -->)",
    re.S,
)
PIVOT_BLOCK = re.compile(
    r"(?P<open><!-- recorded pivot: (?P<path>\S+) (?P<metric>\w+) by (?P<rows>[\w,]+) -->\n)"
    r"(?P<body>.*?)(?P<end><!-- end recorded pivot -->)",
    re.S,
)
DIGITS = 3


def has_blocks(page: str) -> bool:
    return any(block.search(page) for block in (SCORECARD_BLOCK, TABLE_BLOCK, PIVOT_BLOCK))


def _mean_and_error(table: pd.DataFrame, name: str) -> tuple[str, str] | None:
    """The columns of mean and standard error shown as ``name``: ``<name>_mean`` / ``<name>_se`` or
    ``<name>`` / ``<name>_se``; None when ``name`` has no standard error."""
    for mean in (f"{name}_mean", name):
        if mean in table.columns and f"{name}_se" in table.columns:
            return mean, f"{name}_se"
    return None


def table_markdown(path: str | Path, columns: list[str] | None = None) -> str:
    """A recorded result table as Markdown: mean ± s.e. pairs joined, numbers to three decimals, and the
    config digest and code revision its provenance names. ``columns``: the names to show, in order (a
    pair by its mean's name without ``_mean``); all of them by default."""
    from mixmil_workflow.io import read_table

    table = read_table(path)
    if columns is None:
        columns = [
            c.removesuffix("_mean") if _mean_and_error(table, c.removesuffix("_mean")) else c
            for c in table.columns
            if not (c.endswith("_se") and _mean_and_error(table, c.removesuffix("_se")))
        ]
    unknown = [c for c in columns if c not in table.columns and _mean_and_error(table, c) is None]
    if unknown:
        raise ValueError(f"{path}: no column(s) {unknown}; it has {list(table.columns)}")
    shown = pd.DataFrame(index=table.index)
    for column in columns:
        pair = _mean_and_error(table, column)
        if pair is not None:
            values = zip(table[pair[0]], table[pair[1]], strict=True)
            shown[column] = [format_mean_se(m, s, DIGITS) for m, s in values]
            continue
        values = table[column]
        if pd.api.types.is_float_dtype(values):
            # a count with gaps (NaN makes pandas read it as float) stays a count: 9, not 9.000
            digits = 0 if values.dropna().mod(1).eq(0).all() and values.notna().any() else DIGITS
            shown[column] = [f"{v:.{digits}f}" if pd.notna(v) else "–" for v in values]
        else:
            shown[column] = values.astype(str)
    return f"{shown.to_markdown(index=False)}\n\n{provenance_line(path)}"


def pivot_markdown(path: str | Path, metric: str, rows: list[str]) -> str:
    """One metric of a recorded table with a row per value of ``rows`` and a column per model, in the
    order the table lists them; numbers in a row column shown as written (1000, not 1000.0)."""
    from mixmil_workflow.io import read_table

    table = read_table(path)
    missing = [c for c in ["model", *rows, f"{metric}_mean"] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing} for a pivot of {metric!r} by {rows}")
    missing_values = pd.Series(float("nan"), index=table.index)
    errors = table.get(f"{metric}_se", missing_values)
    paired = metric.removesuffix("_difference")
    if paired != metric and {f"{paired}_reference_ahead", f"{paired}_n_paired"} <= set(table.columns):
        ahead = [f" ({k:.0f}/{n:.0f})" if pd.notna(k) else "" for k, n in
                 zip(table[f"{paired}_reference_ahead"], table[f"{paired}_n_paired"], strict=True)]  # fmt: skip
    else:
        ahead = [""] * len(table)
    table = table.assign(
        cell=[
            format_mean_se(m, e, DIGITS) + (k if pd.notna(m) else "")
            for m, e, k in zip(table[f"{metric}_mean"], errors, ahead, strict=True)
        ]
    )
    models = [
        m for m in dict.fromkeys(table["model"]) if table.loc[table["model"] == m, f"{metric}_mean"].notna().any()
    ]
    keys = list(dict.fromkeys(zip(*(table[c] for c in rows), strict=True)))
    cells = table.set_index([*rows, "model"])["cell"]
    shown = pd.DataFrame(
        [
            [*(f"{k:g}" if isinstance(k, float) else str(k) for k in key), *(cells.get((*key, m), "–") for m in models)]
            for key in keys
        ],
        columns=[*rows, *models],
    )
    return f"{shown.to_markdown(index=False, disable_numparse=True)}\n\n{provenance_line(path)}"


def provenance_line(path: str | Path) -> str:
    from mixmil_workflow.workflow.provenance import header_provenance

    config, revision = header_provenance(path)
    return f"Recorded results: config sha256 {config}, {revision}."


def render(page: str, base: str | Path) -> str:
    """``page`` with every recorded block regenerated from its file (paths relative to ``base``)."""
    from mixmil_workflow.io import read_table
    from mixmil_workflow.scorecard import markdown

    def scorecard(match: re.Match) -> str:
        card = read_table(Path(base) / match["path"]).fillna({"setting": ""})
        return markdown(card, [match["config"]])

    def table(match: re.Match) -> str:
        return table_markdown(Path(base) / match["path"], match["columns"].split(",") if match["columns"] else None)

    def pivot(match: re.Match) -> str:
        return pivot_markdown(Path(base) / match["path"], match["metric"], match["rows"].split(","))

    for block, body in ((SCORECARD_BLOCK, scorecard), (TABLE_BLOCK, table), (PIVOT_BLOCK, pivot)):
        page = block.sub(lambda match, body=body: f"{match['open']}\n{body(match)}\n\n{match['end']}", page)
    return page


def main() -> None:
    import sys

    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(render(path.read_text(), path.parent))
        print(f"{path}: recorded results rendered")


if __name__ == "__main__":
    main()
