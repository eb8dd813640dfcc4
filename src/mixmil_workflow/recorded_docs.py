"""Recorded results in the docs: a page shows what a recorded run wrote, regenerated from the files kept
under ``docs/`` rather than pasted, so a number on the page cannot drift from the results it cites.

Two kinds of block, each between its opening comment and ``<!-- end ... -->``:

* ``<!-- scorecard: <tsv> <config file> -->`` ... ``<!-- end scorecard -->``: a reproduction scorecard
  (``results/scorecard/scorecard.tsv``) rendered as the workflow renders it (:func:`scorecard.markdown`);
* ``<!-- recorded table: <tsv> -->`` ... ``<!-- end recorded table -->``: any result table (TSV with its
  ``#`` provenance lines), ``<x>_mean`` / ``<x>_se`` columns shown as one "mean ± s.e." column.

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
DIGITS = 3


def has_blocks(page: str) -> bool:
    return bool(SCORECARD_BLOCK.search(page) or TABLE_BLOCK.search(page))


def table_markdown(path: str | Path) -> str:
    """A recorded result table as Markdown: mean ± s.e. pairs joined, numbers to three decimals, and the
    config digest and code revision its provenance names."""
    from mixmil_workflow.io import read_table
    from mixmil_workflow.workflow.provenance import header_provenance

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
            shown[column] = [f"{v:.{DIGITS}f}" if pd.notna(v) else "–" for v in values]
        else:
            shown[column] = values.astype(str)
    config, revision = header_provenance(path)
    return f"{shown.to_markdown(index=False)}\n\nRecorded results: config sha256 {config}, {revision}."


def render(page: str, base: str | Path) -> str:
    """``page`` with every recorded block regenerated from its file (paths relative to ``base``)."""
    from mixmil_workflow.io import read_table
    from mixmil_workflow.scorecard import markdown

    def scorecard_block(match: re.Match) -> str:
        card = read_table(Path(base) / match["path"]).fillna({"setting": ""})
        return f"{match.group(1)}\n{markdown(card, [match['config']])}\n\n{match.group(5)}"

    def table_block(match: re.Match) -> str:
        return f"{match.group(1)}\n{table_markdown(Path(base) / match['path'])}\n\n{match.group(4)}"

    return TABLE_BLOCK.sub(table_block, SCORECARD_BLOCK.sub(scorecard_block, page))


def main() -> None:
    import sys

    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(render(path.read_text(), path.parent))
        print(f"{path}: recorded results rendered")


if __name__ == "__main__":
    main()
