"""The ragged attention pooling of one OneK1K-size MixMIL minibatch (64 bags of about 1,250 cells x 30,
8 posterior samples x 28 outputs = 224 direction pairs), forward and backward, two ways in interleaved
rounds on 2 threads (medians): the segment ops over the flat (instances, K) scores with autograd (the
path before padded buckets) and the padded buckets with the written-out backward (the path now).

    python benchmarks/investigations/mixmil_ragged_pool/pool_step.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_pool import (
    pad_buckets,
    padded_attention_pool_backward,
    padded_attention_pool_forward,
)
from mixmil_workflow.models.segment import segment_softmax, segment_sum


def onek1k_minibatch(n_bags: int = 64, mean_size: int = 1250, q: int = 30, seed: int = 0) -> Bags:
    """Log-normal bag sizes around ``mean_size`` (as benchmarks/onek1k_scale.py draws them)."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(1, np.round(rng.lognormal(0, 0.5, n_bags) * mean_size / np.exp(0.125))).astype(int)
    return Bags.from_list([rng.standard_normal((k, q), dtype=np.float32) for k in sizes])


def segment_pool(bags: Bags, directions: torch.Tensor, grad_t: torch.Tensor) -> torch.Tensor:
    d = directions.detach().requires_grad_(True)
    gamma, beta = d.view(2, d.shape[0] // 2, -1).unbind(0)
    w = segment_softmax(bags.x @ gamma.T, bags.offsets, bags.index)
    t = segment_sum(w * (bags.x @ beta.T), bags.offsets, bags.index).T
    (grad,) = torch.autograd.grad(t, d, grad_t)
    return grad


def bucket_pool(bags: Bags, directions: torch.Tensor, grad_t: torch.Tensor) -> torch.Tensor:
    buckets = pad_buckets(bags, directions.shape[0])
    _, caches = padded_attention_pool_forward(directions, buckets, bags.n_bags)
    return padded_attention_pool_backward(caches, grad_t)


def time_s(f, n: int = 3) -> float:
    f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bags = onek1k_minibatch()
    torch.manual_seed(0)
    directions = 0.3 * torch.randn(2 * args.pairs, bags.n_features)
    grad_t = torch.randn(args.pairs, bags.n_bags)
    ref, new = segment_pool(bags, directions, grad_t), bucket_pool(bags, directions, grad_t)
    print(f"max |gradient difference| {float((ref - new).abs().max()):.2e} (scale {float(ref.abs().max()):.2e})")
    times = {"segment": [], "buckets": []}
    for _ in range(args.rounds):
        times["segment"].append(time_s(lambda: segment_pool(bags, directions, grad_t)))
        times["buckets"].append(time_s(lambda: bucket_pool(bags, directions, grad_t)))
    seg, buck = (statistics.median(times[k]) for k in ("segment", "buckets"))
    print(
        f"{bags.n_bags} bags, {bags.n_instances} instances, {args.pairs} direction pairs: segment ops "
        f"{seg * 1e3:.0f} ms, padded buckets {buck * 1e3:.0f} ms per minibatch ({seg / buck:.1f}x)"
    )


if __name__ == "__main__":
    main()
