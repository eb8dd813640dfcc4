"""Table E.1's instance-level tree rows against their mean-pooled counterparts, on chosen outputs.

The instance-level Random Forest and XGBoost (every instance a row with its bag's label, a bag predicted by
the mean of its instances' predictions) run the paper's random search (20 combinations x 5 folds) on
50,000 instance rows per output instead of 1,000 bag rows: measured here at about 15 min per output for
XGBoost and several hours for the Random Forest on one CPU core, so the workflow's `xgboost_instance` /
`rf_instance` jobs (all 10 outputs in one job, config/paper.yaml) do not fit a short session. This script
fits single outputs of those jobs, exactly as the job fits them (`TreeMIL.fit_output`: the same dataset,
seeds, folds and search; a test checks that one output alone equals the job's), and the mean-pooled model
of the same kind on the same outputs, so the two are compared output by output. Results go to
benchmarks/investigations/table_e1/results/instance_level_trees_<kind>.{json,md}, rewritten after every output.

    python benchmarks/investigations/table_e1/instance_level_trees.py --kind xgboost --outputs 0 1 2
    python benchmarks/investigations/table_e1/instance_level_trees.py --kind xgboost --threads 1 --outputs 3 4 --out /tmp/part2
    python benchmarks/investigations/table_e1/instance_level_trees.py --kind xgboost --combine results/...json /tmp/part2.json

``--library-defaults`` fits both poolings once with the library's default hyperparameters instead of the
search (a reading of the paper's "we initially also tried to train these models directly on instance
features": minutes per output instead of hours); results go to ..._library_defaults.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import spearmanr

from mixmil_workflow.metrics import mean_and_se
from mixmil_workflow.models.registry import build as build_model
from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed
from mixmil_workflow.studies.simulation import (
    simulate_default as default_dataset,  # the other scripts import it from here
)

ROOT = Path(__file__).resolve().parents[3]
MODEL_NAMES = {"xgboost": "xgboost", "random_forest": "rf"}  # config/paper.yaml: <prefix>_mean, <prefix>_instance
# The estimators' own defaults for the hyperparameters Tables C.3/C.4 search (scikit-learn 1.9
# RandomForestRegressor; xgboost 3.x documented defaults, which its sklearn API leaves as None).
LIBRARY_DEFAULTS = {
    "random_forest": {
        "n_estimators": 100, "max_features": 1.0, "max_depth": None, "min_samples_split": 2, "min_samples_leaf": 1,
    },
    "xgboost": {"n_estimators": 100, "learning_rate": 0.3, "max_depth": 6, "subsample": 1.0, "colsample_bytree": 1.0},
}  # fmt: skip
PAPER = {"xgboost": {"mean": 0.36, "instance": 0.48}, "random_forest": {"mean": 0.45, "instance": 0.45}}
POOLINGS = ("instance", "mean")


def paper_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())


def fit_one(
    kind: str,
    pooling: str,
    data,
    p: int,
    config: dict,
    repeat: str,
    threads: int,
    sampling: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """Output p of the workflow's <kind>_<pooling> job on the default scenario of this repeat (XGBoost:
    with ``learning_rate_sampling`` = ``sampling`` when given; ``overrides``: one fit with these
    hyperparameters instead of the search, e.g. LIBRARY_DEFAULTS[kind])."""
    name = f"{MODEL_NAMES[kind]}_{pooling}"
    spec = dict(config["models"][name])
    if sampling is not None:
        spec["learning_rate_sampling"] = sampling
    if overrides is not None:
        spec["overrides"] = dict(overrides)
    model = build_model(spec, derive_seed(config["seed"], "fit", name, DEFAULT_SCENARIO, repeat))
    model.config.n_jobs = threads
    train, test = data.bags("train"), data.bags("test")
    start = time.perf_counter()
    fitted, params = model.fit_output(model.features(train), data.y_train[:, p], train.sizes.numpy(), p)
    seconds = time.perf_counter() - start
    score = model.bag_predictions(fitted, model.features(test), test.offsets.numpy())
    rho = float(spearmanr(score, data.u_test[:, p]).statistic)
    return {"output": p, "pooling": pooling, "spearman": rho, "params": params, "seconds": seconds, "threads": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(MODEL_NAMES), default="xgboost")
    parser.add_argument("--repeat", default="0", help="the workflow's repeat of the default scenario")
    parser.add_argument("--outputs", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--poolings", nargs="+", choices=POOLINGS, default=list(POOLINGS))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--learning-rate-sampling",
        choices=["log_uniform", "uniform"],
        help="XGBoost: the model spec's learning_rate_sampling (default: config/paper.yaml's)",
    )
    parser.add_argument(
        "--library-defaults",
        action="store_true",
        help="one fit per output with the library's default hyperparameters (LIBRARY_DEFAULTS), no search",
    )
    parser.add_argument(
        "--out", type=Path, help="results path without suffix (default benchmarks/investigations/table_e1/results/...)"
    )
    parser.add_argument("--combine", type=Path, nargs="+", help="merge the JSON records of partial runs")
    args = parser.parse_args()
    if args.combine:  # the parts' settings name the default results file
        first = record_settings(json.loads(args.combine[0].read_text()))
        args.learning_rate_sampling = first.get("learning_rate_sampling")
        args.library_defaults = first["library_defaults"]
    sampling = args.learning_rate_sampling
    suffix = f"_{sampling}" if sampling and sampling != "log_uniform" else ""
    suffix += "_library_defaults" if args.library_defaults else ""
    args.out = (
        args.out
        or ROOT / "benchmarks" / "investigations" / "table_e1" / "results" / f"instance_level_trees_{args.kind}{suffix}"
    )
    if args.combine:
        parts = [as_trees_record(json.loads(path.read_text())) for path in args.combine]
        keys = ("kind", "repeat", "seed", "learning_rate_sampling", "library_defaults")
        settings = {tuple(record_settings(part).get(k) for k in keys) for part in parts}
        if len(settings) != 1:
            raise SystemExit(f"--combine: the parts differ in {keys}: {sorted(settings, key=str)}")
        args.learning_rate_sampling = parts[0]["settings"].get("learning_rate_sampling")
        # Each row keeps its own part's thread count (older records name it only in their settings), so
        # wall time x threads stays a per-row CPU-time estimate when parts ran with different threads.
        rows = [{"threads": part["settings"]["threads"]} | row for part in parts for row in part["rows"]]
        keys = [(row["output"], row["pooling"]) for row in rows]
        if len(set(keys)) != len(keys):
            raise SystemExit("--combine: an (output, pooling) pair appears in more than one part")
        threads = sorted({row["threads"] for row in rows})  # a combined part lists several
        # A part that was itself combined names its own parts, so the record keeps the first runs' files.
        sources = [Path(s) for path, part in zip(args.combine, parts, strict=True)
                   for s in part["settings"].get("combined_from") or [path]]  # fmt: skip
        write_results(args, parts[0]["settings"]["seed"], rows, threads, sources)
        return

    config = paper_config()
    data = default_dataset(config, args.repeat)
    rows: list[dict] = []
    for p in args.outputs:
        for pooling in args.poolings:
            overrides = LIBRARY_DEFAULTS[args.kind] if args.library_defaults else None
            rows.append(fit_one(args.kind, pooling, data, p, config, args.repeat, args.threads, sampling, overrides))
            row = rows[-1]
            print(f"output {p} {pooling}: rho {row['spearman']:.3f} ({row['seconds'] / 60:.1f} min)", flush=True)
            # Written after every fit: a run stopped early keeps what it finished.
            write_results(args, config["seed"], rows, [args.threads], None)


def as_trees_record(record: dict) -> dict:
    """A record of this script, or one of benchmarks/investigations/table_e1/instance_level_selection.py as this script's: its replay
    of the instance-level search gives the job's model (its row-scored choice), so each replayed output is
    an instance row (seconds: the replay's, which also refits the bag-scored choice where it differs)."""
    if "outputs" not in record:
        return record
    rows = []
    for output in record["outputs"]:
        choice = output["choice"]["rows"]
        params = output["combinations"][choice["combination"]]["params"]
        rows.append(
            {"output": output["output"], "pooling": "instance", "spearman": choice["test"], "params": params,
             "seconds": output["seconds"]}
        )  # fmt: skip
    settings = {**record["settings"], "learning_rate_sampling": None, "library_defaults": False}
    return {"settings": settings, "rows": rows}


def record_settings(record: dict) -> dict:
    """A results record's settings; records from before --library-defaults existed are searched fits."""
    return {"library_defaults": False} | record["settings"]


def write_results(args, seed: int, rows: list[dict], threads: list[int], parts: list[Path] | None) -> None:
    rows = sorted(rows, key=lambda row: (row["output"], row["pooling"]))
    by_output: dict[int, dict[str, float]] = {}
    for row in rows:
        by_output.setdefault(row["output"], {})[row["pooling"]] = row["spearman"]
    paired = sorted(p for p, r in by_output.items() if len(r) == len(POOLINGS))
    summary = {}
    for pooling in POOLINGS:
        values = [r[pooling] for r in by_output.values() if pooling in r]
        if values:
            mean, se = mean_and_se(np.array(values))
            summary[pooling] = {"spearman": mean, "spearman_se": se, "n_outputs": len(values)}
    if paired:
        mean, se = mean_and_se(np.array([by_output[p]["instance"] - by_output[p]["mean"] for p in paired]))
        summary["instance_minus_mean"] = {"spearman": mean, "spearman_se": se, "n_outputs": len(paired)}
    settings = {
        "kind": args.kind,
        "repeat": args.repeat,
        "seed": seed,
        "threads": threads[0] if len(threads) == 1 else threads,
        "learning_rate_sampling": args.learning_rate_sampling,
        "library_defaults": args.library_defaults,
    }
    record = {
        "settings": {**settings, "combined_from": [str(p) for p in parts or []]},
        "rows": rows,
        "summary": summary,
        "paper": PAPER[args.kind],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    label = {"xgboost": "XGBoost", "random_forest": "Random Forest"}[args.kind]
    lines = [
        f"# {label}: instance-level vs mean pooling on the default simulation ({record['date']})",
        "",
        f"Default dataset of repeat {args.repeat} (config seed {seed}, config/paper.yaml), the workflow's "
        f"`{MODEL_NAMES[args.kind]}_instance` and `{MODEL_NAMES[args.kind]}_mean` fits of the outputs below "
        + (
            "(one fit each with the library's default hyperparameters, no search: "
            + ", ".join(f"{k}={v}" for k, v in LIBRARY_DEFAULTS[args.kind].items())
            if args.library_defaults
            else "(random search of 20 combinations x 5 folds each"
        )
        + (f"; learning_rate_sampling {args.learning_rate_sampling}" if args.learning_rate_sampling else "")
        + f"), {settings['threads']} thread(s) per process"
        + (f", {len(parts)} parts combined" if parts else "")
        + f". Command: `python benchmarks/investigations/table_e1/instance_level_trees.py --kind {args.kind}"
        + (f" --learning-rate-sampling {args.learning_rate_sampling}" if args.learning_rate_sampling else "")
        + (f" --repeat {args.repeat}" if args.repeat != "0" else "")
        + (" --library-defaults" if args.library_defaults else "")
        + "`. Spearman between the "
        "test prediction and the true bag effect; mean +- s.e. over outputs (paper: 10 outputs x 10 repeats).",
        "",
        "| model | Spearman | outputs | paper (Table E.1) |",
        "|---|---|---|---|",
    ]
    for key, s in summary.items():
        paper = PAPER[args.kind].get(key)
        lines.append(
            f"| {key} | {s['spearman']:.3f} +- {s['spearman_se']:.3f} | {s['n_outputs']} | "
            + (f"{paper:.2f} |" if paper is not None else "– |")
        )
    lines += ["", "| output | pooling | Spearman | fit minutes | chosen hyperparameters |", "|---|---|---|---|---|"]
    for row in rows:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        lines.append(
            f"| {row['output']} | {row['pooling']} | {row['spearman']:.3f} | {row['seconds'] / 60:.1f} | {params} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
