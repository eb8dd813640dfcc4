"""The equal-size attention pooling of one training step (forward and backward) at the default
simulation's size on 2 threads: torch's layout (directions, bags, instances) against the numba kernels'
of `pool_kernels_numba.py` (instances, directions), each part on its own, interleaved rounds (medians).
Run it with NUMBA_NUM_THREADS no larger than the torch threads (README, "Fourth look").

    python benchmarks/investigations/mixmil_cpu_step/pool_kernels.py
"""

from __future__ import annotations

import statistics

import pool_kernels_numba as kernels
import torch
from step_split import time_ms

from mixmil_workflow.models.attention_pool import attention_pool_backward, attention_pool_forward


def attention_pool_forward_cpu(directions: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """The kernels' forward: scores (B x I, 2K), weights (B, I, K), pooled scores t (K, B)."""
    n_bags, n_inst, q = x.shape
    flat = x.reshape(n_bags * n_inst, q)
    scores = flat @ directions.T
    weights = scores.new_empty(n_bags, n_inst, directions.shape[0] // 2)
    t = scores.new_empty(directions.shape[0] // 2, n_bags)
    threads = torch.get_num_threads()
    views = (scores.view(n_bags, n_inst, -1).numpy(), weights.numpy(), t.numpy())
    kernels.on_threads(kernels.pool_forward, threads, *views)
    return t, (flat, scores, weights, t, threads)


def attention_pool_backward_cpu(cache: tuple, grad_t: torch.Tensor) -> torch.Tensor:
    flat, scores, weights, t, threads = cache
    views = (scores.view(weights.shape[0], weights.shape[1], -1).numpy(), weights.numpy(), t.numpy())
    kernels.on_threads(kernels.pool_backward, threads, *views, grad_t.contiguous().numpy())
    return (flat.T @ scores).T


def main() -> None:
    torch.set_num_threads(2)
    n_bags, n_inst, q, n_pairs = 64, 50, 30, 80  # 64 bags of 50 x 30, 8 samples x 10 outputs
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_bags, n_inst, q, generator=gen)
    directions = 0.2 * torch.randn(2 * n_pairs, q, generator=gen)
    grad_t = torch.randn(n_pairs, n_bags, generator=gen)
    flat = x.reshape(-1, q)
    wide = torch.empty(2 * n_pairs, n_bags * n_inst)  # torch's layout
    tall = torch.empty(n_bags * n_inst, 2 * n_pairs)  # the kernels'
    scores = wide.view(2, n_pairs, n_bags, n_inst)
    weights, t = torch.empty(n_bags, n_inst, n_pairs), torch.empty(n_pairs, n_bags)
    torch.mm(flat, directions.T, out=tall)

    def torch_pool():
        _, cache = attention_pool_forward(directions, x)
        attention_pool_backward(cache, grad_t, in_place=True)

    def kernel_pool():
        _, cache = attention_pool_forward_cpu(directions, x)
        attention_pool_backward_cpu(cache, grad_t)

    parts = {
        "torch: whole pooling": torch_pool,
        "torch: scores matmul": lambda: torch.mm(directions, flat.T, out=wide),
        "torch: softmax + vecdot": lambda: torch.linalg.vecdot(torch.softmax(scores[0], -1), scores[1]),
        "torch: gradient matmul": lambda: flat.T @ wide.T,
        "kernels: whole pooling": kernel_pool,
        "kernels: scores matmul": lambda: torch.mm(flat, directions.T, out=tall),
        "kernels: forward kernel": lambda: kernels.pool_forward(
            tall.view(n_bags, n_inst, -1).numpy(), weights.numpy(), t.numpy(), 2
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
