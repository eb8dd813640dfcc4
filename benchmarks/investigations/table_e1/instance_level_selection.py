"""Which hyperparameters the instance-level tree search would choose if it scored bags instead of rows.

The workflow's instance-level trees (Table E.1; `rf_instance` / `xgboost_instance` in config/paper.yaml)
search Tables C.3/C.4 with 5-fold CV over bags, scoring each fold by the Spearman correlation between the
*instance rows'* predictions and their copied bag labels. The model is then judged on *bags* (the mean of
a bag's instance predictions against its true effect). The paper does not say which of the two its search
scored. This script replays the job's search for single outputs of the default scenario, combination by
combination and fold by fold (the same combinations, folds, seeds and estimators: a test checks that its
row-scored choice and predictions are the job's), records both cross-validation scores of every
combination, and refits the combination each criterion chooses to score it on the test bags. Results go
to benchmarks/investigations/table_e1/results/instance_level_selection_<kind>.{json,md}, rewritten after every output.

    python benchmarks/investigations/table_e1/instance_level_selection.py --kind random_forest --outputs 5 --threads 2
    python benchmarks/investigations/table_e1/instance_level_selection.py --refit-all ...   # also every other combination's test score
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from instance_level_trees import MODEL_NAMES, PAPER, default_dataset, paper_config  # benchmarks/, beside this script
from joblib import Parallel, delayed
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.model_selection import ParameterSampler

from mixmil_workflow.metrics import mean_and_se
from mixmil_workflow.models.registry import build as build_model
from mixmil_workflow.models.trees import _bag_folds, _spearman_scorer, search_space
from mixmil_workflow.studies.simulation import DEFAULT_SCENARIO, derive_seed

ROOT = Path(__file__).resolve().parents[3]
CRITERIA = ("rows", "bags")  # what a fold's Spearman compares: instance rows, or bag means


def bag_means(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The mean of each bag's consecutive rows of a CV fold, summed as ``TreeMIL.bag_predictions`` sums them: XGBoost
    predicts float32, where another summation order moves means by an ulp and can swap near-tied ranks."""
    return np.array([chunk.mean() for chunk in np.split(values, np.cumsum(sizes)[:-1])])


def instance_model(kind: str, config: dict, repeat: str, threads: int):
    """The workflow's <kind>_instance model of the default scenario on this repeat, as the job builds it."""
    name = f"{MODEL_NAMES[kind]}_instance"
    model = build_model(
        dict(config["models"][name]), derive_seed(config["seed"], "fit", name, DEFAULT_SCENARIO, repeat)
    )
    model.config.n_jobs = threads
    return model


def fold_scores(estimator, params: dict, x, target, sizes, train_rows, test_rows, test_bags) -> tuple[float, float]:
    """One combination on one fold: (row Spearman, as the job's search scores it; bag-mean Spearman)."""
    fitted = clone(estimator).set_params(**params).fit(x[train_rows], target[train_rows])
    rows = _spearman_scorer(fitted, x[test_rows], target[test_rows])
    predicted = bag_means(fitted.predict(x[test_rows]), sizes[test_bags])
    rho = spearmanr(predicted, bag_means(target[test_rows], sizes[test_bags])).statistic
    return rows, (-1.0 if not np.isfinite(rho) else float(rho))


def replay_search(
    model, x: np.ndarray, y: np.ndarray, sizes: np.ndarray, p: int, combos: list[dict] | None = None
) -> tuple[list[dict], object]:
    """Every combination of output p's search with its mean CV score under both criteria, and the base
    estimator (``TreeMIL.fit_output``'s: seed + p, one thread per fit). ``combos``: score these
    combinations on the search's folds instead of the ones the search draws."""
    cfg = model.config
    target = np.repeat(model._target(y), sizes)
    folds = list(_bag_folds(len(sizes), sizes, cfg.cv_folds, cfg.seed))
    bag_of_fold = [np.sort(b) for _, b in _bag_folds(len(sizes), None, cfg.cv_folds, cfg.seed)]
    if combos is None:  # RandomizedSearchCV draws its combinations with exactly this sampler and random_state.
        space = search_space(cfg.kind, cfg.learning_rate_sampling)
        combos = list(ParameterSampler(space, cfg.n_iter, random_state=cfg.seed + p))
    estimator = model._estimator(cfg.seed + p)
    jobs = [(c, f) for c in range(len(combos)) for f in range(len(folds))]
    # verbose: joblib reports finished fits on stderr (the 100 fits of a Random Forest output take hours).
    scores = Parallel(n_jobs=cfg.n_jobs, verbose=10)(
        delayed(fold_scores)(estimator, combos[c], x, target, sizes, *folds[f], bag_of_fold[f]) for c, f in jobs
    )
    table = []
    for c, params in enumerate(combos):
        mine = np.array([s for (cc, _), s in zip(jobs, scores, strict=True) if cc == c])
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
        table.append(
            {
                "combination": c,
                "params": params,
                "cv_rows": float(mine[:, 0].mean()),
                "cv_bags": float(mine[:, 1].mean()),
            }
        )
    return table, estimator


def chosen(table: list[dict], criterion: str) -> int:
    """The combination a criterion picks (the first of equal scores, as RandomizedSearchCV's best_index_)."""
    return int(np.argmax([row[f"cv_{criterion}"] for row in table]))


def held_out_score(model, estimator, params: dict, x, target_rows, test_x, test_offsets, truth) -> float:
    """A combination refitted on all training rows, scored as the job scores its test bags."""
    fitted = clone(estimator).set_params(**params).fit(x, target_rows)
    return float(spearmanr(model.bag_predictions(fitted, test_x, test_offsets), truth).statistic)


def select_output(model, data, p: int, refit_all: bool) -> dict:
    """Output p: both criteria's CV scores of every combination, each criterion's choice and its test score."""
    train, test = data.bags("train"), data.bags("test")
    x, sizes = model.features(train), train.sizes.numpy()
    test_x, test_offsets = model.features(test), test.offsets.numpy()
    start = time.perf_counter()
    table, estimator = replay_search(model, x, data.y_train[:, p], sizes, p)
    target_rows = np.repeat(model._target(data.y_train[:, p]), sizes)
    choices = {criterion: chosen(table, criterion) for criterion in CRITERIA}
    to_score = range(len(table)) if refit_all else sorted(set(choices.values()))
    scores = Parallel(n_jobs=model.config.n_jobs)(
        delayed(held_out_score)(
            model, estimator, table[c]["params"], x, target_rows, test_x, test_offsets, data.u_test[:, p]
        )
        for c in to_score
    )
    for c, rho in zip(to_score, scores, strict=True):
        table[c]["test"] = rho
    cv = np.array([[row["cv_rows"], row["cv_bags"]] for row in table])
    return {
        "output": p,
        "choice": {criterion: {"combination": c, "test": table[c]["test"]} for criterion, c in choices.items()},
        "criteria_spearman": float(spearmanr(cv[:, 0], cv[:, 1]).statistic),
        "combinations": table,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(MODEL_NAMES), default="random_forest")
    parser.add_argument("--repeat", default="0", help="the workflow's repeat of the default scenario")
    parser.add_argument("--outputs", type=int, nargs="+", default=[5])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--refit-all", action="store_true", help="test-score every combination, not only the chosen")
    parser.add_argument(
        "--out", type=Path, help="results path without suffix (default benchmarks/investigations/table_e1/results/...)"
    )
    args = parser.parse_args()
    args.out = (
        args.out
        or ROOT / "benchmarks" / "investigations" / "table_e1" / "results" / f"instance_level_selection_{args.kind}"
    )
    config = paper_config()
    data = default_dataset(config, args.repeat)
    model = instance_model(args.kind, config, args.repeat, args.threads)
    outputs = []
    for p in args.outputs:
        outputs.append(select_output(model, data, p, args.refit_all))
        choice = outputs[-1]["choice"]
        print(
            f"output {p}: rows-scored choice test rho {choice['rows']['test']:.3f}, bag-scored "
            f"{choice['bags']['test']:.3f} ({outputs[-1]['seconds'] / 60:.1f} min)",
            flush=True,
        )
        write_results(args, config["seed"], outputs)  # after every output: a stopped run keeps what it finished


def write_results(args, seed: int, outputs: list[dict]) -> None:
    summary = {}
    for criterion in CRITERIA:
        mean, se = mean_and_se(np.array([o["choice"][criterion]["test"] for o in outputs]))
        summary[criterion] = {"spearman": mean, "spearman_se": se, "n_outputs": len(outputs)}
    command = (
        f"python benchmarks/investigations/table_e1/instance_level_selection.py --kind {args.kind} --outputs "
        + " ".join(str(o["output"]) for o in outputs)
    )
    command += (f" --repeat {args.repeat}" if args.repeat != "0" else "") + (" --refit-all" if args.refit_all else "")
    record = {
        "settings": {"kind": args.kind, "repeat": args.repeat, "seed": seed, "threads": args.threads},
        "command": command,
        "outputs": outputs,
        "summary": summary,
        "paper_instance": PAPER[args.kind]["instance"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        f"# Instance-level {args.kind}: search scored on rows vs on bags ({record['date']})",
        "",
        f"Default dataset of repeat {args.repeat} (config seed {seed}, config/paper.yaml), the workflow's "
        f"`{MODEL_NAMES[args.kind]}_instance` search replayed (20 combinations x 5 folds over bags, {args.threads} "
        f"thread(s)). `rows`: a fold scores the Spearman between instance-row predictions and their copied bag "
        "labels (the workflow's search); `bags`: between the bags' mean predictions and their labels. Test: "
        f"Spearman between the test bags' mean prediction and the true bag effect. Command: `{command}`.",
        "",
        "| search scored on | test Spearman of its choice | outputs | paper instance row (Table E.1) |",
        "|---|---|---|---|",
    ]
    for criterion, s in summary.items():
        lines.append(
            f"| {criterion} | {s['spearman']:.3f} +- {s['spearman_se']:.3f} | {s['n_outputs']} | "
            f"{PAPER[args.kind]['instance']:.2f} |"
        )
    for o in outputs:
        lines += [
            "",
            f"## Output {o['output']} ({o['seconds'] / 60:.1f} min; Spearman between the two CV scores over "
            f"combinations: {o['criteria_spearman']:.2f})",
            "",
            "| combination | CV rows | CV bags | test | chosen by | hyperparameters |",
            "|---|---|---|---|---|---|",
        ]
        for row in o["combinations"]:
            by = [c for c in CRITERIA if o["choice"][c]["combination"] == row["combination"]]
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
            test = f"{row['test']:.3f}" if "test" in row else "–"
            lines.append(
                f"| {row['combination']} | {row['cv_rows']:.3f} | {row['cv_bags']:.3f} | {test} | "
                f"{', '.join(by) or '–'} | {params} |"
            )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
