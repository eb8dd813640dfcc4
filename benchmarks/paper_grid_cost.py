"""How many CPU-hours does config/paper.yaml's simulation grid take, and which models take them?

Times one fit of every simulation model of the paper configuration on the default scenario (repeat 0, the
workflow's seeds), on one thread: the torch models (MixMIL, the neural MIL baselines) on all the
configuration's outputs, which they fit together; the GLMM and the tree searches, which fit one output at
a time, on the first output, times the number of outputs. The instance-level tree searches (hours per
output) are not rerun: their per-output time is read from the recorded
benchmarks/investigations/table_e1/results/instance_level_trees_*.json (CPU time: wall time x threads of that run).

The grid's cost is then the default fit's time x repeats x the sum over the model's scenarios of a size
factor: (training bags x instances per bag) relative to the default for the models that see instances,
training bags relative to the default for those that see one pooled row per bag (GLMM, pooled trees).
The instance-feature axis is counted as factor 1 (an assumption; Q changes the per-row cost little
next to the search sizes). Results: benchmarks/results/paper_grid_cost.{json,md}, rewritten after every model.

    python benchmarks/paper_grid_cost.py                       # every model (about an hour on one core)
    python benchmarks/paper_grid_cost.py --models mixmil glmm --out /tmp/cost   # a subset
    python benchmarks/paper_grid_cost.py --reuse benchmarks/results/paper_grid_cost.json  # new recorded searches
    python benchmarks/paper_grid_cost.py --reuse benchmarks/results/paper_grid_cost.json \
        --remeasure mixmil abmil      # time these models again, keep the other measured fits (marked reused)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from threadpoolctl import threadpool_limits

from mixmil_workflow.models.registry import build as build_model
from mixmil_workflow.studies.simulation import (
    DEFAULT_SCENARIO,
    derive_seed,
    model_runs,
    scenario_grid,
    simulate_default,
)
from mixmil_workflow.workflow.resources import size_factor  # the cluster profile's cost model scales the same way

ROOT = Path(__file__).resolve().parents[1]
RECORDED_INSTANCE_TREES = {
    "random_forest": "instance_level_trees_random_forest.json",
    "xgboost": "instance_level_trees_xgboost.json",
}


def fits_per_output(spec: dict) -> bool:
    """GLMM and tree searches fit the outputs one by one; the torch models fit them together."""
    return spec["type"] in ("glmm", "random_forest", "xgboost")


def recorded_instance_tree_seconds(kind: str) -> tuple[float, str]:
    """Mean CPU seconds per output of the recorded instance-level search of ``kind``."""
    path = ROOT / "benchmarks" / "investigations" / "table_e1" / "results" / RECORDED_INSTANCE_TREES[kind]
    record = json.loads(path.read_text())
    rows = [row for row in record["rows"] if row["pooling"] == "instance"]
    # Rows carry their run's thread count; records from before they did name one count in their settings.
    threads = [row.get("threads", record["settings"]["threads"]) for row in rows]
    seconds = [row["seconds"] * n for row, n in zip(rows, threads, strict=True)]
    shown = "/".join(str(n) for n in sorted(set(threads)))
    return float(np.mean(seconds)), f"recorded: {len(seconds)} output(s) x {shown} thread(s), {path.name}"


def time_default_fit(name: str, spec: dict, config: dict) -> tuple[float, str]:
    """CPU seconds of the model's fit on the default scenario of repeat 0 (all outputs)."""
    sim = config["simulation"]
    n_outputs = sim["n_outputs"]
    per_output = fits_per_output(spec)
    # The workflow's dataset when all outputs are simulated; one output of the same design otherwise.
    data = simulate_default(config, "0", n_outputs=1 if per_output else n_outputs)
    model = build_model({**spec, "threads": 1}, derive_seed(config["seed"], "fit", name, DEFAULT_SCENARIO, "0"))
    start = time.process_time()
    model.fit(data.bags("train"), data.y_train)
    seconds = time.process_time() - start
    how = f"measured on 1 of {n_outputs} outputs, x {n_outputs}" if per_output else f"measured, {n_outputs} outputs"
    return (seconds * n_outputs if per_output else seconds), how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "paper.yaml")
    parser.add_argument("--models", nargs="+", help="default: the configuration's simulation models")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "paper_grid_cost")
    parser.add_argument(
        "--reuse", type=Path, help="an earlier results JSON: its measured fits are reused, the recorded ones reread"
    )
    parser.add_argument("--remeasure", nargs="+", default=[], help="with --reuse: models to time again")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # One BLAS/OpenMP thread too: idle BLAS threads spin, and process CPU time would count them.
    threadpool_limits(limits=1)
    config = yaml.safe_load(args.config.read_text())
    sim, models = config["simulation"], config["models"]
    grid = scenario_grid(sim)
    runs = model_runs(sim, models, grid)
    earlier_record = json.loads(args.reuse.read_text()) if args.reuse else {"rows": []}
    earlier = {row["model"]: row for row in earlier_record["rows"] if row["model"] not in args.remeasure}
    rows = []
    for name in args.models or sim["models"]:
        spec = models[name]
        scenarios = [s for m, s, r in runs if m == name and r == 0]
        if spec.get("pooling") == "instance" and spec["type"] != "glmm":
            per_output, how = recorded_instance_tree_seconds(spec["type"])
            default_seconds = per_output * sim["n_outputs"]
        elif name in earlier:
            default_seconds, how = earlier[name]["default_fit_seconds"], earlier[name]["how"]
            if not how.startswith("reused"):  # which fits this run timed and which it took over, and from when
                how = f"reused from {earlier_record['date']}: {how}"
        else:
            default_seconds, how = time_default_fit(name, spec, config)
        factors = [size_factor(grid[s], grid[DEFAULT_SCENARIO], spec) for s in scenarios]
        hours = default_seconds * sim["n_repeats"] * sum(factors) / 3600
        rows.append(
            {
                "model": name,
                "fits": len(scenarios) * sim["n_repeats"],
                "default_fit_seconds": default_seconds,
                "how": how,
                "size_factor_sum": sum(factors),
                "cpu_hours": hours,
            }
        )
        print(f"{name}: default fit {default_seconds:.0f} CPU-s ({how}), grid {hours:.1f} CPU-h", flush=True)
        write_results(args, config, rows)


def write_results(args, config: dict, rows: list[dict]) -> None:
    total = sum(row["cpu_hours"] for row in rows)
    record = {
        "config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "torch": torch.__version__,
        "rows": rows,
        "total_cpu_hours": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    sim = config["simulation"]
    lines = [
        f"# CPU cost of the simulation grid of `{record['config']}` ({record['date']})",
        "",
        f"{sim['n_repeats']} repeats x {len(scenario_grid(sim))} scenarios, {sim['n_outputs']} outputs per dataset; "
        "one thread; the default scenario's fit timed (process CPU time) and scaled by each scenario's size "
        "(see the script's docstring). Command: `python benchmarks/paper_grid_cost.py`.",
        "",
        "| model | fits | default fit (CPU min) | how | size factor (sum over scenarios) | grid CPU-hours | share |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: -r["cpu_hours"]):
        lines.append(
            f"| {row['model']} | {row['fits']} | {row['default_fit_seconds'] / 60:.1f} | {row['how']} | "
            f"{row['size_factor_sum']:.2f} | {row['cpu_hours']:.1f} | {row['cpu_hours'] / total:.1%} |"
        )
    lines.append(f"| **total** | {sum(r['fits'] for r in rows)} | | | | **{total:.0f}** | |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
