"""MixMIL's training step through the numba kernels around the pooling against the torch step, at the
default simulation's size on 2 threads, interleaved rounds (medians), both posteriors; each with the
fused Adam update, as a fit runs it, and the pooling alone for scale.

    python benchmarks/investigations/mixmil_cpu_step/step_kernels.py
"""

from __future__ import annotations

import copy
import statistics

import torch
from step_split import default_simulation_step, time_ms

from mixmil_workflow.models.attention_pool import attention_pool_backward, attention_pool_forward


def main() -> None:
    module, cfg, args = default_simulation_step()
    batch_x = args[0]
    for posterior in ("full_rank", "mean_field"):
        if posterior == "mean_field":  # the same module with a mean-field posterior of the same means
            from mixmil_workflow.models.posterior import GaussianPosterior

            module.q = GaussianPosterior(module.q.mu.detach(), module.q.log_sd.detach().exp(), "mean_field")
        steps = {}
        for fused in (False, True):
            twin = copy.deepcopy(module)
            twin.fused_cpu_step = fused
            optimiser = torch.optim.Adam(twin.parameters(), lr=cfg.lr, fused=True)
            generator = torch.Generator().manual_seed(0)

            def step(twin=twin, optimiser=optimiser, generator=generator):
                twin.training_step(*args, generator)
                optimiser.step()

            steps["kernels" if fused else "torch"] = step
        theta = module.q.rsample(cfg.n_samples, torch.Generator().manual_seed(0))
        directions = module._directions(theta).detach()
        grad_t = torch.randn(directions.shape[0] // 2, cfg.batch_size)

        def pool(directions=directions, grad_t=grad_t):
            _, cache = attention_pool_forward(directions, batch_x)
            attention_pool_backward(cache, grad_t, in_place=True)

        steps["pooling"] = pool
        times = {name: [] for name in steps}
        for _ in range(7):
            for name, f in steps.items():
                times[name].append(time_ms(f))
        med = {name: statistics.median(v) for name, v in times.items()}
        print(
            f"{posterior}: torch step {med['torch']:.3f} ms, kernels step {med['kernels']:.3f} ms "
            f"({med['torch'] / med['kernels']:.2f}x), pooling alone {med['pooling']:.3f} ms"
        )


if __name__ == "__main__":
    main()
