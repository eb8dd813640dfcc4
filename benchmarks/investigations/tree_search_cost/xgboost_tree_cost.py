"""Where one XGBoost fit of the paper grid's searches spends its time: CPU milliseconds per boosted tree
on one thread for the bag-level searches' shape (640 training rows of a 5-fold search over 800 bags, 90
moment features) against depth, histogram bins and rows (Table C.4's setting otherwise: hist, subsample
and column sample 0.75, learning rate 0.1; random data, only sizes matter).

    python benchmarks/investigations/tree_search_cost/xgboost_tree_cost.py [--trees 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def ms_per_tree(rows: int, features: int, depth: int, trees: int, max_bin: int = 256) -> float:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features))
    y = 1 / (1 + np.exp(-x[:, 0]))
    model = xgb.XGBRegressor(
        objective="binary:logistic", eval_metric="logloss", n_jobs=1, tree_method="hist", max_depth=depth,
        n_estimators=trees, learning_rate=0.1, subsample=0.75, colsample_bytree=0.75, random_state=0,
        max_bin=max_bin,
    )  # fmt: skip
    start = time.process_time()
    model.fit(x, y)
    return 1000 * (time.process_time() - start) / trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=300)
    args = parser.parse_args()
    settings = [
        ("640 x 90, depth 6 (the searches' typical fit)", 640, 90, 6, 256),
        ("depth 3", 640, 90, 3, 256),
        ("depth 9", 640, 90, 9, 256),
        ("64 bins instead of 256", 640, 90, 6, 64),
        ("10 features instead of 90", 640, 10, 6, 256),
        ("6,400 rows instead of 640", 6400, 90, 6, 256),
    ]
    print("| setting | CPU ms per tree |\n|---|---|")
    for name, rows, features, depth, bins in settings:
        print(f"| {name} | {ms_per_tree(rows, features, depth, args.trees, bins):.2f} |")


if __name__ == "__main__":
    main()
