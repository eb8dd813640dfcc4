"""The equal-size attention pooling of one training step (forward and backward) at the default
simulation's size: torch's ops in their layout (directions, bags, instances) against the package's numba
kernels (``models/attention_pool_kernels.py``) in theirs (instances, directions), the whole pooling and
each part on its own, interleaved rounds (medians). README, "Fourth look" and "Sixth look"; the parallel
kernels of the fourth look are in the history (ceeb8d0's ``models/attention_pool_kernels.py``).

    python benchmarks/investigations/mixmil_cpu_step/pool_kernels.py [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from step_split import time_ms

from mixmil_workflow.models import attention_pool
from mixmil_workflow.models import attention_pool_kernels as kernels
from mixmil_workflow.models.attention_pool import attention_pool_backward, attention_pool_forward

KERNELS = attention_pool.uses_pool_kernels


def use_pool_kernels(on: bool) -> None:
    """The package's dense pooling through the kernels (``on``) or through torch's ops, from the next call."""
    attention_pool.uses_pool_kernels = KERNELS if on else (lambda x: False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(parser.parse_args().threads)
    n_bags, n_inst, q, n_pairs = 64, 50, 30, 80  # 64 bags of 50 x 30, 8 samples x 10 outputs
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_bags, n_inst, q, generator=gen)
    directions = 0.2 * torch.randn(2 * n_pairs, q, generator=gen)
    grad_t = torch.randn(n_pairs, n_bags, generator=gen)
    flat = x.reshape(-1, q)
    wide = torch.empty(2 * n_pairs, n_bags * n_inst)  # torch's layout
    tall = torch.empty(n_bags * n_inst, 2 * n_pairs)  # the kernels'
    scores = wide.view(2, n_pairs, n_bags, n_inst)
    exp_logits, inv_total, t = (
        torch.empty(n_bags, n_inst, n_pairs),
        torch.empty(n_bags, n_pairs),
        torch.empty(n_pairs, n_bags),
    )
    torch.mm(flat, directions.T, out=tall)
    tall3 = tall.view(n_bags, n_inst, -1).numpy()

    def pooling(kernels_on: bool):
        def run():
            use_pool_kernels(kernels_on)
            _, cache = attention_pool_forward(directions, x)
            attention_pool_backward(cache, grad_t, in_place=True)

        return run

    parts = {
        "torch: whole pooling": pooling(False),
        "torch: scores matmul": lambda: torch.mm(directions, flat.T, out=wide),
        "torch: softmax + vecdot": lambda: torch.linalg.vecdot(torch.softmax(scores[0], -1), scores[1]),
        "torch: gradient matmul": lambda: flat.T @ wide.T,
        "kernels: whole pooling": pooling(True),
        "kernels: scores matmul": lambda: torch.mm(flat, directions.T, out=tall),
        "kernels: forward kernel": lambda: kernels.pool_forward(
            tall3, exp_logits.numpy(), inv_total.numpy(), t.numpy()
        ),
        "kernels: gradient matmul": lambda: flat.T @ tall,
    }
    times = {name: [] for name in parts}
    for _ in range(7):
        for name, f in parts.items():
            times[name].append(time_ms(f, 300))
    for name, values in times.items():
        print(f"{name}: {statistics.median(values):.3f} ms")


if __name__ == "__main__":
    main()
