"""Where a fit's CPU training step goes, timed in place: a clock around each part of the step (the pooling's
forward and backward, the three kernels, the Adam update) during a fit on the default simulation, and the
whole per-step time from the epochs' own clocks; what the parts do not cover is set-up and loop overhead.

    python benchmarks/investigations/mixmil_cpu_step/step_parts.py [full_rank|mean_field] [--epochs 200]
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

from mixmil_workflow import MixMIL
from mixmil_workflow.models import mixmil_cpu_step, mixmil_module, training
from mixmil_workflow.models import mixmil_step_kernels as kernels
from mixmil_workflow.simulate.paper import SimulationParams, simulate

seconds: dict[str, float] = collections.defaultdict(float)


def timed(owner, name: str, label: str) -> None:
    """Replace ``owner.name`` by the same callable with a clock around it."""
    function = getattr(owner, name)

    def clocked(*args, **kwargs):
        start = time.perf_counter()
        out = function(*args, **kwargs)
        seconds[label] += time.perf_counter() - start
        return out

    setattr(owner, name, clocked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("posterior", nargs="?", default="full_rank", choices=["full_rank", "mean_field"])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timed(mixmil_module, "attention_pool_forward", "pooling forward")
    timed(mixmil_module, "attention_pool_backward", "pooling backward")
    for name in ("sample_theta", "standardise_binomial", "kl_backward"):
        timed(kernels, name, name)
    timed(mixmil_cpu_step.CPUKernelStep, "__call__", "whole step without Adam")
    timed(training.FusedAdam, "step", "Adam")
    data = simulate(SimulationParams(n_outputs=10), seed=0)
    train = data.bags("train")
    MixMIL(posterior=args.posterior, n_epochs=20, device="cpu", progress=False).fit(train, data.y_train)  # warm
    seconds.clear()
    model = MixMIL(posterior=args.posterior, n_epochs=args.epochs, device="cpu", progress=False)
    model.fit(train, data.y_train)
    steps = args.epochs * -(-train.n_bags // model.config.batch_size)
    print(f"{args.posterior}: {1e3 * np.sum(model.epoch_seconds) / steps:.3f} ms per step (epochs' clocks)")
    for label, total in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"  {label:24s} {1e3 * total / steps:.3f} ms per step")


if __name__ == "__main__":
    main()
