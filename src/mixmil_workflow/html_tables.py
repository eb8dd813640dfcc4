"""Result tables as self-contained HTML pages, which the Snakemake report shows inline (a Markdown table
is only a download there): a sortable table (click a column header), an optional introduction and the
table's provenance. No scripts or styles from outside the page, so it works offline and inside the report.
"""

from __future__ import annotations

import html as html_escape
import re

import pandas as pd

STYLE = """
body { font-family: sans-serif; margin: 1.2em; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
table.sortable th { cursor: pointer; }
td.yes { background: #e3f4e3; } td.no { background: #f8e0e0; }
.provenance { color: #555; font-size: 0.85em; }
"""

# Sort a table by the clicked column: numbers numerically (the leading number of "0.81 ± 0.02"), the rest
# as text; a second click reverses the order.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const key = row => {
    const text = row.cells[column].textContent.trim();
    const number = parseFloat(text);
    return isNaN(number) ? text : number;
  };
  const ascending = th.dataset.order !== "asc";
  Array.from(body.rows)
    .sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (ascending ? 1 : -1))
    .forEach(row => body.appendChild(row));
  th.dataset.order = ascending ? "asc" : "desc";
}));
"""


def table_html(table: pd.DataFrame, sortable: bool = True) -> str:
    """One table; cells that say yes / no get a colour (the scorecard's agreement)."""
    out = table.to_html(index=False, border=0, escape=True, classes="sortable" if sortable else None, na_rep="–")
    return re.sub(r"<td>(yes|no)</td>", r'<td class="\1">\1</td>', out)


def page(title: str, sections: list[str], provenance_lines: list[str] | None = None) -> str:
    """A complete page: the title, the given HTML sections in order and the provenance lines."""
    footer = ""
    if provenance_lines:
        items = "".join(f"<li>{html_escape.escape(line)}</li>" for line in provenance_lines)
        footer = f'<div class="provenance"><p>Provenance:</p><ul>{items}</ul></div>'
    body = "\n".join(sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html_escape.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html_escape.escape(title)}</h1>\n{body}\n{footer}\n"
        f"<script>{SORT_SCRIPT}</script>\n</body></html>\n"
    )


def paragraph(text: str) -> str:
    return f"<p>{html_escape.escape(text)}</p>"
