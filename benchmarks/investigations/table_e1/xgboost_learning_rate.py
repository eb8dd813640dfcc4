"""Does the reading of Table C.4's learning-rate space explain the paper's XGBoost row of Table E.1?

Table C.4 lists XGBoost's learning rate as "{10^-3, ..., 10^-2, ..., 10^0}" without saying how it was
sampled. This package reads it as log-uniform on [1e-3, 1] and gets 0.435 on the default dataset of
repeat 0 (mean pooling; paper 0.36 +- 0.02), where the search picks learning rates of 0.001-0.02
(benchmarks/investigations/table_e1/results/instance_level_trees_xgboost.md). Two measurements on that dataset:

* ``curve``: Spearman on the test bags against the learning rate, every other hyperparameter fixed at the
  middle of its Table C.4 range (max_depth 6, 550 trees, subsample and colsample_bytree 0.75), fitted on
  all training bags: how far a larger learning rate alone moves XGBoost.
* ``readings``: the workflow's random search (20 combinations x 5 folds over bags, scored by Spearman,
  refit on all training bags; the same estimator, seeds and folds as the ``xgboost_mean`` job) with the
  learning rate drawn in other ways a reader of the table could have implemented:
  ``log_uniform`` (this package), ``uniform`` (linear on [1e-3, 1]) and ``decades`` (the set
  {1e-3, 1e-2, 1e-1, 1}).

Results (mean and s.e. over outputs of the Spearman between the test prediction and the true bag effect)
go to benchmarks/investigations/table_e1/results/xgboost_learning_rate.{json,md}, rewritten after every output.

    python benchmarks/investigations/table_e1/xgboost_learning_rate.py                                # curve, then every reading
    python benchmarks/investigations/table_e1/xgboost_learning_rate.py --readings uniform --outputs 0 1 --out /tmp/lr

Readings (and the curve) can run in separate processes and be combined into the results files:

    python benchmarks/investigations/table_e1/xgboost_learning_rate.py --threads 1 --readings uniform --out /tmp/lr/a &
    python benchmarks/investigations/table_e1/xgboost_learning_rate.py --threads 1 --no-curve --readings decades --out /tmp/lr/b
    python benchmarks/investigations/table_e1/xgboost_learning_rate.py --combine /tmp/lr/a.json /tmp/lr/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from instance_level_trees import default_dataset, paper_config  # a sibling script: benchmarks/ is on sys.path
from scipy.stats import spearmanr
from sklearn.model_selection import RandomizedSearchCV

from mixmil_workflow.metrics import mean_and_se
from mixmil_workflow.models.registry import build as build_model
from mixmil_workflow.models.trees import _bag_folds, _spearman_scorer, pool_bags, search_space
from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed

PAPER = 0.36
# The package's two readings (TreeMIL's learning_rate_sampling) and one more a reader could have used.
READINGS = {
    "log_uniform": search_space("xgboost", "log_uniform")["learning_rate"],
    "uniform": search_space("xgboost", "uniform")["learning_rate"],
    "decades": [1e-3, 1e-2, 1e-1, 1.0],
}
CURVE_RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
CURVE_FIXED = {"max_depth": 6, "n_estimators": 550, "subsample": 0.75, "colsample_bytree": 0.75}


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    rho = spearmanr(a, b).statistic
    return -1.0 if not np.isfinite(rho) else float(rho)


def search(model, reading: str, x: np.ndarray, y: np.ndarray, p: int, threads: int):
    """``TreeMIL.fit_output``'s search for output p with the learning rate drawn as ``reading``."""
    cfg = model.config
    space = {**search_space("xgboost"), "learning_rate": READINGS[reading]}
    folds = list(_bag_folds(len(x), None, cfg.cv_folds, cfg.seed))
    found = RandomizedSearchCV(
        model._estimator(cfg.seed + p),
        space,
        n_iter=cfg.n_iter,
        cv=folds,
        scoring=_spearman_scorer,
        random_state=cfg.seed + p,
        refit=True,
        n_jobs=threads,
    ).fit(x, model._target(y))
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in found.best_params_.items()}
    return found.best_estimator_, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", default="0", help="the workflow's repeat of the default scenario")
    parser.add_argument("--outputs", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--readings", nargs="*", default=["uniform", "decades"], choices=sorted(READINGS))
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "xgboost_learning_rate")
    parser.add_argument("--combine", type=Path, nargs="+", help="merge the JSON records of partial runs")
    args = parser.parse_args()
    if args.combine:
        combine(args)
        return

    config = paper_config()
    seed = config["seed"]
    data = default_dataset(config, args.repeat)
    fit_seed = derive_seed(config["seed"], "fit", "xgboost_mean", DEFAULT_SCENARIO, args.repeat)
    model = build_model(dict(config["models"]["xgboost_mean"]), fit_seed)
    x_tr, x_te = pool_bags(data.bags("train"), "mean"), pool_bags(data.bags("test"), "mean")
    record = {
        "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "seed": seed},
        "curve": {} if args.no_curve else {str(r): [] for r in CURVE_RATES},
        "readings": {r: {"per_output": [], "chosen": []} for r in args.readings},
        "outputs_done": {"curve": [], **{r: [] for r in args.readings}},
        "paper": PAPER,
    }
    start = time.perf_counter()
    if not args.no_curve:
        for p in args.outputs:
            for rate in CURVE_RATES:
                est = model._estimator(fit_seed + p, args.threads).set_params(learning_rate=rate, **CURVE_FIXED)
                est.fit(x_tr, model._target(data.y_train[:, p]))
                record["curve"][str(rate)].append(_rho(est.predict(x_te), data.u_test[:, p]))
            record["outputs_done"]["curve"].append(p)
            print(f"curve, output {p}: " + ", ".join(f"{float(r):g} {v[-1]:.3f}" for r, v in record["curve"].items()))
            write(args, record, time.perf_counter() - start)
    for reading in args.readings:
        for p in args.outputs:
            est, params = search(model, reading, x_tr, data.y_train[:, p], p, args.threads)
            rho = _rho(est.predict(x_te), data.u_test[:, p])
            record["readings"][reading]["per_output"].append(rho)
            record["readings"][reading]["chosen"].append(params)
            record["outputs_done"][reading].append(p)
            print(f"{reading}, output {p}: {rho:.3f} with {params}", flush=True)
            write(args, record, time.perf_counter() - start)


def combine(args) -> None:
    """Merge runs of the same dataset and outputs that measured different things (curve, readings)."""
    parts = [json.loads(path.read_text()) for path in args.combine]
    for key in ("repeat", "outputs", "seed"):
        if len({str(part["settings"][key]) for part in parts}) > 1:
            raise SystemExit(f"--combine: the parts differ in {key}; only runs on the same outputs can be merged")
    record = {"settings": {**parts[0]["settings"], "combined_from": [str(p) for p in args.combine]}, "paper": PAPER}
    record["curve"] = next((part["curve"] for part in parts if part["curve"]), {})
    record["readings"] = {k: v for part in parts for k, v in part["readings"].items()}
    record["outputs_done"] = {k: v for part in parts for k, v in part["outputs_done"].items() if v}
    args.repeat, args.threads = parts[0]["settings"]["repeat"], parts[0]["settings"]["threads"]
    write(args, record, max(part["seconds"] for part in parts))  # wall time: the parts ran side by side


def write(args, record: dict, seconds: float) -> None:
    record["seconds"] = seconds
    record["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        f"# XGBoost and the learning rate of Table C.4 on the default simulation ({record['date']})",
        "",
        f"Default dataset of repeat {args.repeat} (config/paper.yaml, seed {record['settings']['seed']}),"
        f" mean pooling, soft labels y / 2 with binary:logistic as the workflow's `xgboost_mean`; "
        f"{seconds / 60:.1f} min with {args.threads} thread(s). Command: `python benchmarks/investigations/table_e1/xgboost_learning_rate.py`. "
        f"Spearman between the test prediction and the true bag effect, mean +- s.e. over outputs. "
        f"Paper (Table E.1): {PAPER:.2f} +- 0.02.",
    ]
    if record["curve"]:
        fixed = ", ".join(f"{k} {v}" for k, v in CURVE_FIXED.items())
        lines += [
            "",
            f"Learning-rate curve ({fixed}; fitted on all training bags), outputs {record['outputs_done']['curve']}:",
            "",
            "| learning rate | Spearman | difference to the paper |",
            "|---|---|---|",
        ]
        for rate, rhos in record["curve"].items():
            if rhos:
                mean, se = mean_and_se(np.array(rhos))
                lines.append(f"| {float(rate):g} | {mean:.3f} +- {se:.3f} | {mean - PAPER:+.3f} |")
    if any(r["per_output"] for r in record["readings"].values()):
        lines += [
            "",
            "Random search (20 combinations x 5 folds, Table C.4's other ranges) with the learning rate drawn as:",
            "",
            "| reading | Spearman | outputs | per output | chosen learning rates | difference to the paper |",
            "|---|---|---|---|---|---|",
        ]
        for reading, r in record["readings"].items():
            if r["per_output"]:
                mean, se = mean_and_se(np.array(r["per_output"]))
                per = ", ".join(f"{v:.3f}" for v in r["per_output"])
                rates = ", ".join(f"{c['learning_rate']:.3g}" for c in r["chosen"])
                lines.append(
                    f"| {reading} | {mean:.3f} +- {se:.3f} | {record['outputs_done'][reading]} | {per} | {rates} "
                    f"| {mean - PAPER:+.3f} |"
                )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
