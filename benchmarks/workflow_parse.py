"""Peak memory and time of planning the workflow: a dry run of each shipped configuration.

The scheduler parses the workflow (rules/common.smk, rules/plan/) with the package's light, torch-free
modules; this records what a dry run of the demo and of the paper configuration costs, and how many sbatch
calls a run through the SLURM profile makes (a second dry run with profiles/slurm: its groups bundle small
jobs; localrules run on the submit host).

    python benchmarks/workflow_parse.py            # writes benchmarks/results/workflow_parse.{json,md}
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["config/config.yaml", "config/paper.yaml"]


def dry_run(configfile: str) -> dict:
    """One dry run in a fresh process: wall seconds, its peak RSS (MB), and the number of jobs planned."""
    snakemake = str(Path(sys.executable).parent / "snakemake")
    with tempfile.TemporaryDirectory() as workdir:
        code = (
            "import resource, subprocess, sys, json; "
            f"out = subprocess.run([{snakemake!r}, '-n', '--cores', '1', '--configfile', {configfile!r}, "
            f"'--directory', {workdir!r}], cwd={str(ROOT)!r}, capture_output=True, text=True); "
            "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; "
            "total = [l.split()[1] for l in out.stdout.splitlines() if l.startswith('total')]; "
            "stats = dict(l.split()[:2] for l in out.stdout.split('Job stats:')[1].split('total')[0].splitlines()[3:] "
            "if len(l.split()) == 2); "
            "print(json.dumps({'rc': out.returncode, 'peak_mb': peak, 'jobs': int(total[0]) if total else 0, "
            "'stats': stats}))"
        )
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        record = json.loads(out.stdout.strip().splitlines()[-1])
    if record["rc"] != 0:
        raise RuntimeError(f"dry run of {configfile} failed")
    seconds = round(time.perf_counter() - start, 2)
    return {"config": configfile, "seconds": seconds, "peak_mb": round(record["peak_mb"], 1), "jobs": record["jobs"],
            **cluster_submissions(configfile)}  # fmt: skip


def cluster_submissions(configfile: str) -> dict:
    """sbatch calls of a run through profiles/slurm: the group jobs plus the ungrouped jobs of rules that
    are not localrules (a dry run with the profile prints each group job's header and each other job)."""
    snakemake = str(Path(sys.executable).parent / "snakemake")
    local = set(
        re.findall(r"^    (\w+),$", (ROOT / "Snakefile").read_text().split("localrules:")[1].split("\n\n")[0], re.M)
    )
    with tempfile.TemporaryDirectory() as workdir:
        out = subprocess.run(
            [snakemake, "-n", "--profile", "profiles/slurm", "--slurm-no-account", "--configfile", configfile,
             "--directory", workdir], cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    singles = [rule for rule in re.findall(r"^rule (\w+):", out, re.M) if rule not in local]
    groups = re.findall(r"Group job (\w+)", out)
    grouped = len(re.findall(r"^    rule \w+:", out, re.M))
    return {"submitted": len(singles) + len(groups), "group_jobs": len(groups), "grouped_jobs": grouped}


def main() -> None:
    rows = [dry_run(c) for c in CONFIGS]
    record = {"command": "python benchmarks/workflow_parse.py", "machine": platform.platform(),
              "python": platform.python_version(), "rows": rows,
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "workflow_parse"
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Dry runs of the workflow ({record['date']})", "", f"Command: `{record['command']}`", "",
             "| config | jobs planned | sbatch calls through profiles/slurm | of them group jobs (jobs inside) "
             "| seconds | peak memory (MB) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['config']} | {r['jobs']} | {r['submitted']} | {r['group_jobs']} ({r['grouped_jobs']}) "
              f"| {r['seconds']} | {r['peak_mb']} |" for r in rows]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
