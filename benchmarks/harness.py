"""The shared harness of the product benchmarks: run a measurement snippet in a fresh Python process (so
that its peak RSS is its own) and read the JSON object it prints last."""

from __future__ import annotations

import json
import subprocess
import sys


def run_snippet(code: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])
