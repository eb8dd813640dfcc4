"""Recorded results in the docs: a page shows what a recorded run wrote, regenerated from the files kept
under ``docs/`` rather than pasted, so a number on the page cannot drift from the results it cites.

Two kinds of block, each between its opening comment and ``<!-- end ... -->``:

* ``<!-- scorecard: <tsv> <config file> -->`` ... ``<!-- end scorecard -->``: a reproduction scorecard
  (``results/scorecard/scorecard.tsv``) rendered as the workflow renders it (:func:`scorecard.markdown`);
* ``<!-- recorded table: <tsv> -->`` ... ``<!-- end recorded table -->``: any result table (TSV with its
  ``#`` provenance lines), ``<x>_mean`` / ``<x>_se`` columns shown as one "mean ± s.e." column;
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

SCORECARD_BLOCK = re.compile(
    r"(<!-- scorecard: (?P<path>\S+) (?P<config>\S+) -->\n)(?P<body>.*?)(<!-- end scorecard -->)", re.S
)
TABLE_BLOCK = re.compile(r"(<!-- recorded table: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end recorded table -->)", re.S)
PIVOT_BLOCK = re.compile(
    r"(<!-- recorded pivot: (?P<path>\S+) (?P<metric>\w+) by (?P<rows>[\w,]+) -->\n)"
    r"(?P<body>.*?)(<!-- end recorded pivot -->)",
    re.S,
)
DIGITS = 3


def has_blocks(page: str) -> bool:
    return any(block.search(page) for block in (SCORECARD_BLOCK, TABLE_BLOCK, PIVOT_BLOCK))


def table_markdown(path: str | Path) -> str:
    """A recorded result table as Markdown: mean ± s.e. pairs joined, numbers to three decimals, and the
    config digest and code revision its provenance names."""
    from mixmil_workflow.io import read_table

    table = read_table(path)
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith("_se") and f"{column[:-3]}_mean" in table.columns:
            continue
        values = table[column]
        if column.endswith("_mean") and f"{column[:-5]}_se" in table.columns:
            pairs = zip(values, table[f"{column[:-5]}_se"], strict=True)
            shown[column[:-5]] = [f"{m:.{DIGITS}f} ± {s:.{DIGITS}f}" if pd.notna(m) else "–" for m, s in pairs]
        elif pd.api.types.is_float_dtype(values):
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
    means = table[f"{metric}_mean"]
    missing_values = pd.Series(float("nan"), index=table.index)
    errors = table.get(f"{metric}_se", missing_values)
    paired = metric.removesuffix("_difference")
    ahead = table.get(f"{paired}_reference_ahead", missing_values) if paired != metric else missing_values
    units = table.get(f"{paired}_n_paired", missing_values)

    def cell(mean: float, error: float, k: float, n: float) -> str:
        if pd.isna(mean):
            return "–"
        text = f"{mean:.{DIGITS}f}" + ("" if pd.isna(error) else f" ± {error:.{DIGITS}f}")
        return text + ("" if pd.isna(k) or pd.isna(n) else f" ({k:.0f}/{n:.0f})")

    table = table.assign(cell=[cell(*values) for values in zip(means, errors, ahead, units, strict=True)])
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

    def scorecard_block(match: re.Match) -> str:
        card = read_table(Path(base) / match["path"]).fillna({"setting": ""})
        return f"{match.group(1)}\n{markdown(card, [match['config']])}\n\n{match.group(5)}"

    def table_block(match: re.Match) -> str:
        return f"{match.group(1)}\n{table_markdown(Path(base) / match['path'])}\n\n{match.group(4)}"

    def pivot_block(match: re.Match) -> str:
        body = pivot_markdown(Path(base) / match["path"], match["metric"], match["rows"].split(","))
        return f"{match.group(1)}\n{body}\n\n{match.group(6)}"

    page = SCORECARD_BLOCK.sub(scorecard_block, page)
    return PIVOT_BLOCK.sub(pivot_block, TABLE_BLOCK.sub(table_block, page))


def main() -> None:
    import sys

    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(render(path.read_text(), path.parent))
        print(f"{path}: recorded results rendered")


if __name__ == "__main__":
    main()
