"""How long the README's two commands take, from the log of a fresh-clone CI run (`.ci/run`, which runs
`make test`; the demo of `make run` runs inside it as the setup of tests/workflow/test_demo.py):

    CI=true bash .ci/run > ci.log 2>&1; python benchmarks/ci_timings.py ci.log [--revision REV]

Writes benchmarks/results/ci_timings.{json,md}: the test suite's wall time, the demo run's (its setup in
the suite, run and report), the outcome counts and the ten slowest steps, as pytest reported them.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DEMO_SETUP = "tests/workflow/test_demo.py::test_demo_configuration_end_to_end"


def parse(log: str) -> dict:
    log = re.sub(r"^> ?", "", log, flags=re.M)  # a log quoted as the CI service shows it
    final = re.findall(r"^=+ (.*) in ([\d.]+)s(?: \([\d:]+\))? =+$", log, re.M)
    if not final:
        raise SystemExit("no pytest summary line in the log: not a finished `make test`")
    outcome, seconds = final[-1]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", outcome)}
    slowest = [
        {"seconds": float(s), "phase": phase, "test": test}
        for s, phase, test in re.findall(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)$", log, re.M)
    ]
    demo = next((row["seconds"] for row in slowest if row["test"] == DEMO_SETUP and row["phase"] == "setup"), None)
    return {"suite_seconds": float(seconds), "counts": counts, "demo_run_seconds": demo, "slowest": slowest}


def minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)  # rounded first: 3059.6 s is 51 min 00 s, not 50 min 60 s
    return f"{minutes} min {rest:02d} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--revision", default="", help="the commit the CI ran")
    args = parser.parse_args()
    result = parse(Path(args.log).read_text(errors="replace"))
    result |= {
        "command": f"python benchmarks/ci_timings.py {Path(args.log).name}",
        "revision": args.revision,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ci_timings.json").write_text(json.dumps(result, indent=2) + "\n")
    counts = ", ".join(f"{n} {kind}" for kind, n in result["counts"].items())
    lines = [
        f"# The two commands' time in a fresh-clone CI ({result['date']})",
        "",
        f"Revision {args.revision or 'not given'}, on the CI's machine (2 cores). Command: `{result['command']}`.",
        "",
        f"- `make test` (the whole suite): {minutes(result['suite_seconds'])} ({counts}), after the install",
        f"- `make run` (the demo and its report, the demo test's setup): {minutes(result['demo_run_seconds'] or 0)}",
        "",
        "| seconds | phase | test |",
        "|---|---|---|",
        *(f"| {r['seconds']:.1f} | {r['phase']} | `{r['test']}` |" for r in result["slowest"]),
    ]
    (RESULTS / "ci_timings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
