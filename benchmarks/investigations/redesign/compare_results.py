"""Do two runs of the workflow give the same result tables (time columns aside)?

Compares every tab-separated table under ``results/`` of two run directories (``.tsv`` and ``.tsv.gz``;
provenance lines starting with ``#`` skipped), value for value, after dropping the columns that hold
wall-clock times. Written for issue 33 (the redesign must not move a number); usable for any two runs.

    python benchmarks/investigations/redesign/compare_results.py RUN_A RUN_B [--out report.md]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

TIME_COLUMN = re.compile(r"(seconds|_ms$|_ms_|_s$|^time|minutes|hours)", re.IGNORECASE)  # wall-clock columns


def tables(root: Path) -> dict[str, Path]:
    found = {}
    for pattern in ("*.tsv", "*.tsv.gz"):
        for path in (root / "results").rglob(pattern):
            found[str(path.relative_to(root))] = path
    return found


def compare(a: Path, b: Path) -> tuple[str, str]:
    """(status, detail): "equal", "differs" or "shape" for one table."""
    x = pd.read_csv(a, sep="\t", comment="#")
    y = pd.read_csv(b, sep="\t", comment="#")
    timed = [c for c in x.columns if TIME_COLUMN.search(str(c))]
    x, y = x.drop(columns=timed, errors="ignore"), y.drop(columns=timed, errors="ignore")
    if list(x.columns) != list(y.columns) or x.shape != y.shape:
        return "shape", f"columns {list(x.columns)} / {list(y.columns)}, shapes {x.shape} / {y.shape}"
    differing = []
    for column in x.columns:
        left, right = x[column], y[column]
        if left.equals(right):
            continue
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
            gap = np.nanmax(np.abs(left.to_numpy(float) - right.to_numpy(float)))
            differing.append(f"{column} (max |diff| {gap:.3g})")
        else:
            differing.append(f"{column} ({int((left.astype(str) != right.astype(str)).sum())} cells)")
    ignored = f"; time columns ignored: {', '.join(timed)}" if timed else ""
    return ("differs", ", ".join(differing) + ignored) if differing else ("equal", ignored.lstrip("; "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--out", type=Path, help="write the report (Markdown) here as well")
    args = parser.parse_args()
    a, b = tables(args.run_a), tables(args.run_b)
    rows = [f"| {name} | {'only in ' + ('A' if name in a else 'B')} | |" for name in sorted(set(a) ^ set(b))]
    counts: dict[str, int] = {}
    for name in sorted(set(a) & set(b)):
        status, detail = compare(a[name], b[name])
        counts[status] = counts.get(status, 0) + 1
        rows.append(f"| {name} | {status} | {detail} |")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    report = "\n".join(
        [f"# Result tables of {args.run_a} (A) against {args.run_b} (B)", "", summary, "",
         "| table | status | detail |", "|---|---|---|", *rows]
    )  # fmt: skip
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
