"""How the instance-level Random Forest of Table E.1 depends on its trees' leaf size.

At the instance level every instance is a training row carrying a copy of its bag's label, and a bag is
predicted by the mean of its instances' predictions (`rf_instance` in config/paper.yaml). Table C.3's
space allows leaves of at most 4 rows, and the workflow's search on the default scenario gives 0.245 on
three outputs against the paper's 0.45 (README, Table E.1). This script fits one fixed forest per leaf
size instead of the search (``min_samples_leaf`` swept, the other hyperparameters fixed: FOREST), on the
same default dataset and with the job's seeds (``instance_level_trees.fit_one`` with overrides), and the
same forest on mean-pooled bag features as a reference, so each leaf size is compared with mean pooling
output by output. Minutes per output instead of the search's hours. ``--cv`` also scores every leaf size
by the workflow's 5-fold cross-validation over training bags (instance_level_selection.replay_search:
the job's folds and estimator; each fold scored on instance rows, as the workflow's search does, and on
bag means) and reports the test score of the leaf size each criterion picks: whether the search would
find large leaves if its space held them. Results go to
benchmarks/investigations/table_e1/results/instance_level_forest_leaves{,_cv}.{json,md}, rewritten after every output.

    python benchmarks/investigations/table_e1/instance_level_forest_leaves.py                     # outputs 0-9 of repeat 0
    python benchmarks/investigations/table_e1/instance_level_forest_leaves.py --outputs 0 1 --leaves 1 64 --threads 2
    python benchmarks/investigations/table_e1/instance_level_forest_leaves.py --cv --outputs 0 1 2 3 4   # + the CV choice of leaf
    python benchmarks/investigations/table_e1/instance_level_forest_leaves.py --cv --combine part_a.json part_b.json  # runs on other outputs
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from instance_level_selection import CRITERIA, chosen, instance_model, replay_search  # benchmarks/, beside this
from instance_level_trees import PAPER, default_dataset, fit_one, paper_config

from mixmil_workflow.metrics import mean_and_se

ROOT = Path(__file__).resolve().parents[3]
# Fixed apart from the leaf size: 100 trees (scikit-learn's default), log2 features (what the workflow's
# search chose on output 5; the cheapest choice of Table C.3), trees grown until the leaf size stops them.
FOREST = {"n_estimators": 100, "max_features": "log2", "max_depth": None, "min_samples_split": 2}
LEAVES = (1, 4, 16, 64, 256, 1024, 4096)
MEAN_LEAF = 1  # the mean-pooled reference: 1,000 bag rows, fully grown trees as Table C.3 allows


def forest(leaf: int) -> dict:
    return {**FOREST, "min_samples_leaf": leaf}


def fit_leaf(data, p: int, pooling: str, leaf: int, config: dict, repeat: str, threads: int) -> dict:
    """Output p of the workflow's rf_<pooling> job with FOREST and this leaf size instead of the search."""
    row = fit_one("random_forest", pooling, data, p, config, repeat, threads, overrides=forest(leaf))
    return {**row, "min_samples_leaf": leaf}


def cross_validate_leaves(data, p: int, leaves: list[int], config: dict, repeat: str, threads: int) -> dict:
    """Output p: each leaf size's mean 5-fold CV Spearman on the rf_instance job's folds, scored on rows (as
    the workflow's search) and on bag means, and the leaf size each criterion picks."""
    model = instance_model("random_forest", config, repeat, threads)
    train = data.bags("train")
    combos = [forest(leaf) for leaf in leaves]
    table, _ = replay_search(model, model.features(train), data.y_train[:, p], train.sizes.numpy(), p, combos)
    return {
        "output": p,
        "cv": [
            {"min_samples_leaf": leaf, "cv_rows": r["cv_rows"], "cv_bags": r["cv_bags"]}
            for leaf, r in zip(leaves, table, strict=True)
        ],
        "chosen": {criterion: leaves[chosen(table, criterion)] for criterion in CRITERIA},
    }


def summarise_cv(rows: list[dict], cv: list[dict]) -> dict:
    """Per criterion: the leaf sizes chosen per output and the mean +- s.e. test Spearman of the choices."""
    test = {(r["output"], r["min_samples_leaf"]): r["spearman"] for r in rows if r["pooling"] == "instance"}
    reference = {r["output"]: r["spearman"] for r in rows if r["pooling"] == "mean"}
    summary = {}
    for criterion in CRITERIA:
        picked = {c["output"]: c["chosen"][criterion] for c in cv}
        mean, se = mean_and_se(np.array([test[(p, leaf)] for p, leaf in picked.items()]))
        diff, diff_se = mean_and_se(np.array([test[(p, leaf)] - reference[p] for p, leaf in picked.items()]))
        summary[criterion] = {
            "spearman": mean, "spearman_se": se, "minus_mean": diff, "minus_mean_se": diff_se,
            "n_outputs": len(picked), "chosen": picked,
        }  # fmt: skip
    return summary


def summarise(rows: list[dict]) -> list[dict]:
    """Mean +- s.e. over outputs per (pooling, leaf), and each instance-level leaf size minus the
    mean-pooled reference on the outputs both have (paired)."""
    reference = {r["output"]: r["spearman"] for r in rows if r["pooling"] == "mean"}
    summary = []
    for pooling, leaf in sorted(
        {(r["pooling"], r["min_samples_leaf"]) for r in rows}, key=lambda k: (k[0] != "instance", k[1])
    ):
        mine = {r["output"]: r["spearman"] for r in rows if (r["pooling"], r["min_samples_leaf"]) == (pooling, leaf)}
        mean, se = mean_and_se(np.array(list(mine.values())))
        entry = {
            "pooling": pooling,
            "min_samples_leaf": leaf,
            "spearman": mean,
            "spearman_se": se,
            "n_outputs": len(mine),
        }
        paired = sorted(set(mine) & set(reference))
        if pooling == "instance" and paired:
            diff, diff_se = mean_and_se(np.array([mine[p] - reference[p] for p in paired]))
            entry |= {"minus_mean": diff, "minus_mean_se": diff_se, "n_paired": len(paired)}
        summary.append(entry)
    return summary


def write_results(
    out: Path, args, seed: int, rows: list[dict], cv: list[dict], parts: list[Path] | None = None
) -> None:
    rows = sorted(rows, key=lambda r: (r["output"], r["pooling"], r["min_samples_leaf"]))
    summary = summarise(rows)
    cv_summary = summarise_cv(rows, cv) if cv else None
    command = "python benchmarks/investigations/table_e1/instance_level_forest_leaves.py " + (
        "--cv " if args.cv else ""
    )
    command += "--outputs " + " ".join(map(str, args.outputs))
    command += (
        " --leaves " + " ".join(map(str, args.leaves)) + (f" --repeat {args.repeat}" if args.repeat != "0" else "")
    )
    record = {
        "settings": {
            "repeat": args.repeat,
            "seed": seed,
            "threads": args.threads,
            "forest": FOREST,
            "mean_leaf": MEAN_LEAF,
            "combined_from": [str(path) for path in parts or []],
        },
        "command": command,
        "rows": rows,
        "summary": summary,
        "cv": cv,
        "cv_summary": cv_summary,
        "paper": PAPER["random_forest"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    fixed = ", ".join(f"{k}={v}" for k, v in FOREST.items())
    lines = [
        f"# Instance-level Random Forest by leaf size ({record['date']})",
        "",
        f"Default dataset of repeat {args.repeat} (config seed {seed}, config/paper.yaml). One forest per output "
        f"and leaf size, no search ({fixed}; the job's seeds), on instance rows (a bag predicted by the mean of "
        f"its instances) and, as the reference, on mean-pooled bag features (min_samples_leaf={MEAN_LEAF}). "
        f"Spearman between the test prediction and the true bag effect, mean +- s.e. over outputs; "
        f"`instance - mean`: paired by output. {args.threads} thread(s). Command: `{command}`"
        + (f" (in {len(parts)} parts, combined with --combine). " if parts else ". ")
        + f"Paper (Table E.1, searched over Table C.3, leaves of at most 4): instance "
        f"{PAPER['random_forest']['instance']:.2f}, mean {PAPER['random_forest']['mean']:.2f}.",
        "",
        "| features | min_samples_leaf | Spearman | instance - mean | outputs |",
        "|---|---|---|---|---|",
    ]
    for s in summary:
        diff = f"{s['minus_mean']:+.3f} +- {s['minus_mean_se']:.3f}" if "minus_mean" in s else "–"
        lines.append(
            f"| {s['pooling']} | {s['min_samples_leaf']} | {s['spearman']:.3f} +- {s['spearman_se']:.3f} | {diff} | "
            f"{s['n_outputs']} |"
        )
    if cv_summary:
        lines += [
            "",
            "Leaf size chosen by 5-fold CV over the training bags (the `rf_instance` job's folds; a fold scored on "
            "instance rows, as the workflow's search, or on bag means), and the test Spearman of that choice:",
            "",
            "| CV scored on | test Spearman of the chosen leaf | instance - mean | chosen min_samples_leaf per output "
            "|",
            "|---|---|---|---|",
        ]
        for criterion, c in cv_summary.items():
            chosen = ", ".join(f"{p}: {leaf}" for p, leaf in sorted(c["chosen"].items()))
            lines.append(
                f"| {criterion} | {c['spearman']:.3f} +- {c['spearman_se']:.3f} ({c['n_outputs']} outputs) | "
                f"{c['minus_mean']:+.3f} +- {c['minus_mean_se']:.3f} | {chosen} |"
            )
        lines += ["", "| output | min_samples_leaf | CV rows | CV bags |", "|---|---|---|---|"]
        for c in cv:
            for r in c["cv"]:
                lines.append(f"| {c['output']} | {r['min_samples_leaf']} | {r['cv_rows']:.3f} | {r['cv_bags']:.3f} |")
    lines += ["", "| output | features | min_samples_leaf | Spearman | fit seconds |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['output']} | {r['pooling']} | {r['min_samples_leaf']} | {r['spearman']:.3f} | {r['seconds']:.0f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def combine(paths: list[Path], out: Path) -> None:
    """One record from runs on different outputs of the same settings (e.g. two processes in parallel)."""
    parts = [json.loads(path.read_text()) for path in paths]

    def settings(part: dict) -> str:
        leaves = sorted({r["min_samples_leaf"] for r in part["rows"] if r["pooling"] == "instance"})
        fixed = {k: part["settings"][k] for k in ("repeat", "seed", "forest", "mean_leaf")}
        return json.dumps({**fixed, "leaves": leaves, "cv": bool(part["cv"])}, sort_keys=True)

    if len({settings(part) for part in parts}) != 1:
        raise SystemExit("--combine: the parts differ in repeat, seed, forest, leaf sizes or --cv: " + ", ".join(
            f"{path}: {settings(part)}" for path, part in zip(paths, parts, strict=True)))  # fmt: skip
    outputs = [r["output"] for part in parts for r in part["rows"] if r["pooling"] == "mean"]
    if len(set(outputs)) != len(outputs):
        raise SystemExit(f"--combine: an output appears in more than one part: {sorted(outputs)}")
    first = json.loads(settings(parts[0]))
    threads = sorted({part["settings"]["threads"] for part in parts})
    args = argparse.Namespace(
        repeat=first["repeat"], outputs=sorted(outputs), leaves=first["leaves"], cv=first["cv"],
        threads=threads[0] if len(threads) == 1 else threads,
    )  # fmt: skip
    rows = [r for part in parts for r in part["rows"]]
    cv = sorted((c for part in parts for c in part["cv"]), key=lambda c: c["output"])
    write_results(out, args, first["seed"], rows, cv, paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", default="0", help="the workflow's repeat of the default scenario")
    parser.add_argument("--outputs", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--leaves", type=int, nargs="+", default=list(LEAVES), help="instance-level min_samples_leaf")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads building each forest's trees")
    parser.add_argument("--cv", action="store_true", help="also choose the leaf size by the search's 5-fold CV")
    parser.add_argument(
        "--out", type=Path, help="results path without suffix (default benchmarks/investigations/table_e1/results/...)"
    )
    parser.add_argument("--combine", type=Path, nargs="+", help="merge the JSON records of runs on other outputs")
    args = parser.parse_args()
    if min(args.leaves) < 1:
        raise SystemExit(f"--leaves: a leaf holds at least one row, got {min(args.leaves)}")
    out = args.out or ROOT / "benchmarks" / "investigations" / "table_e1" / "results" / (
        "instance_level_forest_leaves" + ("_cv" if args.cv else "")
    )
    if args.combine:
        combine(args.combine, out)
        return
    config = paper_config()
    data = default_dataset(config, args.repeat)
    rows: list[dict] = []
    cv: list[dict] = []
    for p in args.outputs:
        fits = [("mean", MEAN_LEAF)] + [("instance", leaf) for leaf in args.leaves]
        for pooling, leaf in fits:
            rows.append(fit_leaf(data, p, pooling, leaf, config, args.repeat, args.threads))
            print(
                f"output {p} {pooling} leaf {leaf}: rho {rows[-1]['spearman']:.3f} ({rows[-1]['seconds']:.0f} s)",
                flush=True,
            )
        if args.cv:
            cv.append(cross_validate_leaves(data, p, args.leaves, config, args.repeat, args.threads))
            print(f"output {p}: CV chooses leaf {cv[-1]['chosen']}", flush=True)
        write_results(out, args, config["seed"], rows, cv)  # after every output: a stopped run keeps what it finished


if __name__ == "__main__":
    main()
