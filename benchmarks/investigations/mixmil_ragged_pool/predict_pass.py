"""MixMIL's prediction of bags of different sizes, two ways in interleaved rounds on 2 threads (medians):
``predict`` then ``instance_weights`` (two passes: the attention matmul and softmax of every posterior
sample twice) against ``predict_with_instance_weights`` (one pass). Same numbers (tested in
tests/models/test_mixmil.py); a model trained one epoch on OneK1K-like random bags (log-normal sizes,
Q = 30, 28 Binomial(2) outputs, 100 frozen samples).

    python benchmarks/investigations/mixmil_ragged_pool/predict_pass.py [--instances 300000 --rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.mixmil import MixMIL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    n_bags = max(2, args.instances // 1225)
    sizes = rng.lognormal(0, 0.5, n_bags)
    sizes = np.maximum(1, np.round(sizes / sizes.sum() * args.instances)).astype(int)
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(sizes)]))
    bags = Bags(torch.from_numpy(rng.standard_normal((int(sizes.sum()), 30), dtype=np.float32)), offsets)
    y = rng.integers(0, 3, (n_bags, 28)).astype(np.float32)
    model = MixMIL(likelihood="binomial", n_trials=2, n_epochs=1, batch_size=64, seed=0, progress=False).fit(bags, y)

    def two_passes():
        return model.predict(bags), model.instance_weights(bags)

    def one_pass():
        return model.predict_with_instance_weights(bags)

    times = {"predict, then instance_weights": [], "predict_with_instance_weights": []}
    one_pass()  # numba's kernels compiled or loaded from its cache
    for _ in range(args.rounds):
        for values, f in zip(times.values(), (two_passes, one_pass), strict=True):
            start = time.perf_counter()
            f()
            values.append(time.perf_counter() - start)
    print(f"{bags.n_bags} bags, {bags.n_instances:,} instances x 30, 28 outputs, 100 samples, 2 threads")
    print("| path | s (median) |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
