"""MixMIL's whole closed-form training step eager and through ``torch.compile`` (inductor, CPU), at the
default simulation's size on 2 threads, interleaved rounds (medians); prints the compile time and the
loss of one step each way from the same torch seed.

    python benchmarks/investigations/mixmil_cpu_step/compile_step.py
"""

from __future__ import annotations

import statistics
import time

import torch
from step_split import default_simulation_step, time_ms  # this folder is first on sys.path when run


def main() -> None:
    module, _, args = default_simulation_step()
    args = (*args, None)
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
