"""The dense attention pooling at the default simulation's size (64 bags x 50 instances x 30, 80 direction
pairs), forward and backward, two ways in interleaved rounds on 2 threads (medians): the score-space
backward (the dense path) and the moments formulation of the ragged path (m1 = sum w x, m2 = sum w z x,
then dt/dbeta = m1 and dt/dgamma = m2 - t m1), on the same data.

    python benchmarks/investigations/mixmil_cpu_step/moments_pool.py
"""

from __future__ import annotations

import statistics

import torch
from step_split import time_ms

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_pool import (
    attention_pool_backward,
    attention_pool_forward,
    pad_buckets,
    padded_attention_pool_backward,
    padded_attention_pool_forward,
)


def main() -> None:
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 50, 30, generator=gen)
    directions = 0.3 * torch.randn(160, 30, generator=gen)
    grad_t = torch.randn(80, 64, generator=gen)
    bags = Bags.from_dense(x)
    buckets = pad_buckets(bags, 160)

    def scores_way():
        _, cache = attention_pool_forward(directions, x)
        return attention_pool_backward(cache, grad_t, in_place=True)

    def moments_way():
        _, moments = padded_attention_pool_forward(directions, buckets, 64)
        return padded_attention_pool_backward(moments, grad_t)

    diff = float((scores_way() - moments_way()).abs().max())
    times = {"scores": [], "moments": []}
    for _ in range(7):
        times["scores"].append(time_ms(scores_way))
        times["moments"].append(time_ms(moments_way))
    print({k: f"{statistics.median(v):.3f} ms" for k, v in times.items()}, f"max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
