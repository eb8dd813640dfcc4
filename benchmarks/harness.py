"""The shared harness of the product benchmarks: run a measurement snippet in a fresh Python process (so
that its peak RSS is its own) and read the JSON object it prints last."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def run_snippet(code: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_record(out: Path, record: dict, markdown: Callable[[dict], str]) -> None:
    """Write a benchmark's record as ``out``.json and its Markdown rendering as ``out``.md, and print the
    Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
