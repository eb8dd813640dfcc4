"""One MixMIL training step (closed-form gradients and the fused Adam update) at the default simulation's
size, against its dense attention pooling alone, in interleaved rounds on 2 threads (medians): how much of
the step the pooling is.

    python benchmarks/investigations/mixmil_cpu_step/step_split.py
"""

from __future__ import annotations

import statistics
import time

import torch

from mixmil_workflow import MixMIL
from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_pool import attention_pool_backward, attention_pool_forward
from mixmil_workflow.simulate.paper import SimulationParams, simulate


def time_ms(f, n=200) -> float:
    for _ in range(10):
        f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


def default_simulation_step():
    """A MixMIL module fitted for one epoch on the default simulation (P = 10, full rank) on 2 threads,
    its config, and one minibatch's training_step arguments (dense bags, covariates, labels, training
    size, posterior samples; the generator is the caller's)."""
    torch.set_num_threads(2)
    data = simulate(SimulationParams(n_outputs=10), seed=0)
    bags = Bags.from_dense(torch.as_tensor(data.x_train))
    model = MixMIL(posterior="full_rank", n_epochs=1, seed=0, device="cpu", progress=False).fit(bags, data.y_train)
    module, cfg = model.module, model.config
    y = module.likelihood.prepare_labels(data.y_train).to(torch.float32)
    idx = torch.arange(cfg.batch_size)
    return module, cfg, (bags.dense()[idx], torch.ones(len(idx), 1), y[idx], bags.n_bags, cfg.n_samples)


def main() -> None:
    module, cfg, args = default_simulation_step()
    batch_x = args[0]
    optimiser = torch.optim.Adam(module.parameters(), lr=cfg.lr, fused=True)
    generator = torch.Generator().manual_seed(0)
    theta = module.q.rsample(cfg.n_samples, generator)
    directions = module._directions(theta).detach()
    grad_t = torch.randn(directions.shape[0] // 2, cfg.batch_size)

    def step():
        module.training_step(*args, generator)
        optimiser.step()

    def pool():
        _, cache = attention_pool_forward(directions, batch_x)
        attention_pool_backward(cache, grad_t, in_place=True)

    times = {"step": [], "pool": []}
    for _ in range(5):
        times["step"].append(time_ms(step))
        times["pool"].append(time_ms(pool))
    step_ms, pool_ms = (statistics.median(times[k]) for k in ("step", "pool"))
    print(
        f"step {step_ms:.3f} ms, pooling {pool_ms:.3f} ms ({pool_ms / step_ms:.0%}), the rest {step_ms - pool_ms:.3f} ms"
    )


if __name__ == "__main__":
    main()
