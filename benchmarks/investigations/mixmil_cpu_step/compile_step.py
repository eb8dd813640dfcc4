"""MixMIL's whole closed-form training step eager and through ``torch.compile`` (inductor, CPU), at the
default simulation's size on 2 threads, interleaved rounds (medians); prints the compile time and the
loss of one step each way from the same torch seed.

    python benchmarks/investigations/mixmil_cpu_step/compile_step.py
"""

from __future__ import annotations

import statistics
import time

import torch

from mixmil_workflow import MixMIL
from mixmil_workflow.bags import Bags
from mixmil_workflow.simulate.paper import SimulationParams, simulate


def time_ms(f, n=200) -> float:
    for _ in range(10):
        f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    torch.set_num_threads(2)
    data = simulate(SimulationParams(n_outputs=10), seed=0)
    bags = Bags.from_dense(torch.as_tensor(data.x_train))
    model = MixMIL(posterior="full_rank", n_epochs=1, seed=0, device="cpu", progress=False).fit(bags, data.y_train)
    module = model.module
    y = module.likelihood.prepare_labels(data.y_train).to(torch.float32)
    idx = torch.arange(64)
    args = (bags.dense()[idx], torch.ones(64, 1), y[idx], bags.n_bags, 8, None)
    compiled = torch.compile(module.training_step)
    start = time.perf_counter()
    compiled(*args)
    print(f"compile {time.perf_counter() - start:.1f} s")
    for name, step in (("eager", module.training_step), ("compiled", compiled)):
        torch.manual_seed(1)
        print(name, "loss, NLL, KL of one step:", [round(float(v), 4) for v in step(*args)])
    times = {"eager": [], "compiled": []}
    for _ in range(5):
        times["eager"].append(time_ms(lambda: module.training_step(*args)))
        times["compiled"].append(time_ms(lambda: compiled(*args)))
    print({name: f"{statistics.median(v):.3f} ms" for name, v in times.items()})


if __name__ == "__main__":
    main()
