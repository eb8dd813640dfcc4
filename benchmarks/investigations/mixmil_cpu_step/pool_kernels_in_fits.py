"""The dense pooling's numba kernels (``models/attention_pool_kernels.py``) against torch's ops, in whole
fits on the default simulation: fits of ``--epochs`` epochs alternate between the two paths in one
process (the torch path through ``pool_kernels.use_pool_kernels(False)``), and the median
epoch of each fit (its own clock) is compared round by round.

    python benchmarks/investigations/mixmil_cpu_step/pool_kernels_in_fits.py [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from pool_kernels import use_pool_kernels

from mixmil_workflow import MixMIL
from mixmil_workflow.simulate.paper import SimulationParams, simulate


def median_epoch(posterior: str, kernels: bool, train, y, epochs: int) -> float:
    use_pool_kernels(kernels)
    model = MixMIL(posterior=posterior, n_epochs=epochs, device="cpu", progress=False).fit(train, y)
    return float(np.median(model.epoch_seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = simulate(SimulationParams(n_outputs=10), seed=0)
    train = data.bags("train")
    for posterior in ("full_rank", "mean_field"):
        median_epoch(posterior, True, train, data.y_train, 10)  # compile and warm both paths
        median_epoch(posterior, False, train, data.y_train, 10)
        ratios, seconds = [], {True: [], False: []}
        for _ in range(args.rounds):
            for kernels in (False, True):
                seconds[kernels].append(median_epoch(posterior, kernels, train, data.y_train, args.epochs))
            ratios.append(seconds[False][-1] / seconds[True][-1])
        print(
            f"{posterior}, {args.threads} thread(s): torch ops {1e3 * statistics.median(seconds[False]):.1f} ms, "
            f"kernels {1e3 * statistics.median(seconds[True]):.1f} ms per epoch; median ratio "
            f"{statistics.median(ratios):.2f}x (rounds {', '.join(f'{r:.2f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
