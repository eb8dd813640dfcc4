"""Which label encoding gives the paper's XGBoost row of Table E.1 (mean pooling, rho 0.36 +- 0.02)?

The simulation's labels are Binomial(2) counts y in {0, 1, 2}; Table C.4 lists XGBoost with
``objective = binary:logistic`` and ``eval_metric = logloss`` but the paper does not say how the counts
were mapped to it. Our ``TreeMIL(kind="xgboost")`` fits binary:logistic to soft labels y / 2 and gets
0.435 (README). This script runs, on the same default dataset and with the same random search (Table
C.4's space, 20 combinations, 5-fold CV over bags, scored by Spearman, refit on all training bags), the
encodings a user of xgboost's scikit-learn API could have used:

* ``soft``: ``XGBRegressor(objective="binary:logistic")`` on y / 2 (this package's choice);
* ``classifier_labels``: ``XGBClassifier(objective="binary:logistic")`` on y as given; with three classes
  xgboost silently switches to ``multi:softprob``, and ``predict`` returns hard class labels, which are
  what both the search and the test score rank;
* ``classifier_expected``: the same fitted classifiers, ranked by the expected count p1 + 2 p2;
* ``carrier``: ``XGBClassifier`` on the binarised label y > 0, ranked by its probability.

The classifiers of the two ``classifier_*`` variants are fitted once per combination and fold and
scored both ways. Results (Spearman between the test prediction and the true bag effect, mean and s.e.
over outputs) go to benchmarks/investigations/table_e1/results/xgboost_label_encoding.{json,md}.

    python benchmarks/investigations/table_e1/xgboost_label_encoding.py                 # all 10 outputs of the default dataset
    python benchmarks/investigations/table_e1/xgboost_label_encoding.py --outputs 0 1 2 --out /tmp/xgb

Outputs can be split over processes (one thread each) and the parts combined into the results files:

    python benchmarks/investigations/table_e1/xgboost_label_encoding.py --threads 1 --outputs 0 2 4 6 8 --out /tmp/xgb/even &
    python benchmarks/investigations/table_e1/xgboost_label_encoding.py --threads 1 --outputs 1 3 5 7 9 --out /tmp/xgb/odd
    python benchmarks/investigations/table_e1/xgboost_label_encoding.py --combine /tmp/xgb/even.json /tmp/xgb/odd.json
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
from sklearn.model_selection import ParameterSampler

from mixmil_workflow.metrics import mean_and_se
from mixmil_workflow.models.trees import _bag_folds, pool_bags, search_space
from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed

VARIANTS = ("soft", "classifier_labels", "classifier_expected", "carrier")
PAPER = 0.36


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    rho = spearmanr(a, b).statistic
    return -1.0 if not np.isfinite(rho) else float(rho)


KINDS = ("soft", "classifier", "carrier")  # the fitted models; the two classifier_* variants share one


def _model(kind: str, params: dict, seed: int, threads: int):
    """soft labels regress y / 2; the others classify (the counts, or the carrier label)."""
    from xgboost import XGBClassifier, XGBRegressor

    estimator = XGBRegressor if kind == "soft" else XGBClassifier
    return estimator(
        objective="binary:logistic",
        eval_metric="logloss",
        tree_method="hist",
        n_jobs=threads,
        random_state=seed,
        **params,
    )


def _scores(kind: str, model, x: np.ndarray) -> dict[str, np.ndarray]:
    if kind == "soft":
        return {"soft": model.predict(x)}
    if kind == "classifier":
        proba = model.predict_proba(x)
        return {"classifier_labels": model.predict(x), "classifier_expected": proba @ np.arange(proba.shape[1])}
    return {"carrier": model.predict_proba(x)[:, 1]}


def _targets(y: np.ndarray) -> dict[str, np.ndarray]:
    return {"soft": y / 2.0, "classifier": y.astype(int), "carrier": (y > 0).astype(int)}


def fit_output(x_tr, y_tr, x_te, seed: int, n_iter: int, folds: list, threads: int) -> dict:
    """The random search of every variant for one output; returns each variant's test prediction and
    chosen combination."""
    combos = list(ParameterSampler(search_space("xgboost"), n_iter=n_iter, random_state=seed))
    targets = _targets(y_tr)
    cv = {v: np.zeros((len(combos), len(folds))) for v in VARIANTS}
    for c, params in enumerate(combos):
        for f, (train, held) in enumerate(folds):
            for kind in KINDS:
                model = _model(kind, params, seed, threads)
                model.fit(x_tr[train], targets[kind][train])
                for variant, score in _scores(kind, model, x_tr[held]).items():
                    cv[variant][c, f] = _rho(score, y_tr[held])
    out = {}
    for variant in VARIANTS:
        best = int(np.argmax(cv[variant].mean(1)))
        kind = variant.split("_")[0] if variant.startswith("classifier") else variant
        model = _model(kind, combos[best], seed, threads)
        model.fit(x_tr, targets[kind])
        out[variant] = {
            "prediction": _scores(kind, model, x_te)[variant],
            "params": {k: (v.item() if hasattr(v, "item") else v) for k, v in combos[best].items()},
            "cv_spearman": float(cv[variant][best].mean()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="the workflow's config seed")
    parser.add_argument("--repeat", default="0", help="the workflow's repeat of the default scenario")
    parser.add_argument("--outputs", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--n-iter", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "xgboost_label_encoding")
    parser.add_argument("--combine", type=Path, nargs="+", help="merge the JSON records of partial runs")
    args = parser.parse_args()
    if args.combine:
        combine(args)
        return

    # The dataset and fit seeds of the workflow's xgboost_mean job on this repeat (rules/common.smk).
    data = default_dataset(paper_config(), args.repeat, args.seed)  # the default scenario of config/paper.yaml
    fit_seed = derive_seed(args.seed, "fit", "xgboost_mean", DEFAULT_SCENARIO, args.repeat)
    x_tr, x_te = pool_bags(data.bags("train"), "mean"), pool_bags(data.bags("test"), "mean")
    folds = list(_bag_folds(len(x_tr), None, 5, fit_seed))
    per_output = {v: [] for v in VARIANTS}
    chosen = {v: [] for v in VARIANTS}
    start, done = time.perf_counter(), []
    for p in args.outputs:
        fits = fit_output(x_tr, data.y_train[:, p], x_te, fit_seed + p, args.n_iter, folds, args.threads)
        for variant, fit in fits.items():
            per_output[variant].append(_rho(fit["prediction"], data.u_test[:, p]))
            chosen[variant].append(fit["params"])
        done.append(p)
        print(f"output {p}: " + ", ".join(f"{v} {per_output[v][-1]:.3f}" for v in VARIANTS), flush=True)
        # Written after every output: a run stopped early keeps the outputs it finished.
        write_results(args, done, per_output, chosen, time.perf_counter() - start)


def combine(args) -> None:
    """Merge partial runs (same dataset and search, disjoint outputs) into one record, in output order."""
    parts = [json.loads(path.read_text()) for path in args.combine]
    keys = ("seed", "repeat", "n_iter")
    if any(tuple(part["settings"][k] for k in keys) != tuple(parts[0]["settings"][k] for k in keys) for part in parts):
        raise SystemExit(f"--combine: the parts differ in {keys}; only runs of the same search can be merged")
    rows = sorted(
        (
            (p, {v: (part["results"][v]["per_output"][i], part["chosen"][v][i]) for v in VARIANTS})
            for part in parts
            for i, p in enumerate(part["outputs_done"])
        ),
        key=lambda row: row[0],
    )
    outputs = [p for p, _ in rows]
    if len(set(outputs)) != len(outputs):
        raise SystemExit(f"--combine: an output appears in more than one part: {outputs}")
    args.seed, args.repeat, args.n_iter = (parts[0]["settings"][k] for k in keys)
    threads = sorted({part["settings"]["threads"] for part in parts})
    args.outputs, args.threads = outputs, threads[0] if len(threads) == 1 else threads
    per_output = {v: [row[v][0] for _, row in rows] for v in VARIANTS}
    chosen = {v: [row[v][1] for _, row in rows] for v in VARIANTS}
    # Wall time of the parts, which ran side by side.
    write_results(args, outputs, per_output, chosen, max(part["seconds"] for part in parts))


def write_results(args, done: list[int], per_output: dict, chosen: dict, seconds: float) -> None:
    # Mean and s.e. (sample sd, ddof 1) as the workflow's tables compute them.
    summary = {}
    for v, r in per_output.items():
        mean, se = mean_and_se(np.array(r))
        summary[v] = {"spearman": mean, "spearman_se": se, "per_output": r}
    record = {
        "settings": {
            **{k: v for k, v in vars(args).items() if k != "combine"},
            "out": str(args.out),
            "combined_from": [str(path) for path in args.combine or []],
        },
        "outputs_done": done,
        "seconds": seconds,
        "paper": PAPER,
        "results": summary,
        "chosen": chosen,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        f"# XGBoost label encodings on the default simulation ({record['date']})",
        "",
        f"Default dataset of repeat {args.repeat} (config seed {args.seed}), mean pooling, outputs {done} "
        f"(of {args.outputs} asked for), random search of {args.n_iter} combinations x 5 folds per output; "
        f"{seconds / 60:.1f} min with {args.threads} thread(s)"
        + (f" per part, {len(args.combine)} parts side by side" if args.combine else "")
        + ". Command: `python "
        f"benchmarks/investigations/table_e1/xgboost_label_encoding.py`. Paper (Table E.1, 10 outputs x 10 repeats): {PAPER:.2f} +- 0.02.",
        "",
        "| encoding | Spearman (mean +- s.e. over outputs) | per output | difference to the paper |",
        "|---|---|---|---|",
    ]
    for v, s in summary.items():
        per = ", ".join(f"{r:.3f}" for r in s["per_output"])
        lines.append(f"| {v} | {s['spearman']:.3f} +- {s['spearman_se']:.3f} | {per} | {s['spearman'] - PAPER:+.3f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
