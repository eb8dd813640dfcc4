"""An experiment, not used by the package (README, "Fourth look"): MixMIL's attention pooling of
equal-size bags on the CPU with the softmax, the pooled scores and the backward's elementwise part as
numba kernels between two matrix products.

At the simulation's size a training step pools 64 bags of 50 instances for 80 direction pairs
(8 posterior samples x 10 outputs). torch's path (``attention_pool.attention_pool_forward``) lays the
scores out as (directions, bags, instances) so that its softmax runs over a contiguous axis of 50: three
passes (softmax, then the product with the effect scores, then the backward's products), each over rows
too short for its vector loops. Here the scores are (instances, directions), as ``x @ directions.T``
gives them (the matrix products cost the same), and the kernels walk each bag's instances once with the
vector lanes across the directions (80 = ten 8-wide vectors, no remainder loop). The pooling of a step
took 0.88 ms instead of 1.05 on the 2-core CPU ("Fourth look").

Why a hand-written exp: numba has no vectorised exp without Intel's SVML, and libm's expf, one call per
score, cost more than torch's whole softmax. ``_exp_parts`` is the Cephes single-precision polynomial
(relative error about 1e-7, as expf) for the arguments <= 0 that a softmax shifted by its maximum takes.

Bags are split into one chunk per torch thread, run on as many of numba's threads (:func:`on_threads`);
every (bag, direction) is computed in one chunk with the same arithmetic, so the numbers do not depend on
the number of threads. Sums are float32 as in torch's softmax (vector lanes); NaN propagates (a diverging
fit still stops at the training loop's non-finite check). numba compiles the kernels once per environment
(about 4 s) and caches them.
"""

from __future__ import annotations

import numba
import numpy as np


def on_threads(kernel, n_threads: int, *arrays) -> None:
    """``kernel(*arrays, n)`` with numba's OpenMP team cut to n = ``n_threads`` (at most numba's limit) for
    the call. Why: the team otherwise has a thread per core of the machine, and those without a chunk spin
    at its barrier beside torch's threads; with 8 numba threads on the 2-core CPU a pooling took 20 ms
    instead of 3.5 (a Snakemake job's torch threads are its share of the cores)."""
    n = max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    if previous != n:
        numba.set_num_threads(n)
    try:
        kernel(*arrays, n)
    finally:
        if previous != n:
            numba.set_num_threads(previous)


KERNEL = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy")
LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693359375)  # ln 2 in two parts, as Cephes: the high part exact in float32
LN2_LO = np.float32(-2.12194440e-4)
EXP_FLOOR = np.float32(-87.33)  # below it exp underflows the smallest normal float32
EXP_POLY = tuple(
    np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0e-1)
)


@numba.njit(inline="always", **KERNEL)
def _exp_parts(v):  # pragma: no cover - compiled
    """exp(v) for v <= 0 as (m, e) with exp(v) = m * 2**n and e = the float32 bits of 2**n; the caller
    multiplies through a float32 view of the bits (numba has no scalar bit cast)."""
    v = EXP_FLOOR if v < EXP_FLOOR else v  # this order keeps NaN
    n = np.floor(v * LOG2E + np.float32(0.5))
    r = v - n * LN2_HI - n * LN2_LO
    poly = EXP_POLY[0]
    for c in EXP_POLY[1:]:
        poly = poly * r + c
    return poly * r * r + r + np.float32(1.0), (np.int32(n) + np.int32(127)) << 23


@numba.njit(**KERNEL)
def _forward_bags(scores, weights, t, first, stop):  # pragma: no cover - compiled
    """Bags ``first`` to ``stop``: weights[b, i, k] = softmax_i(a[b, i, k]) and t[k, b] = sum_i
    weights[b, i, k] z[b, i, k], where scores (B, I, 2K) hold the logits a, then the effect scores z."""
    n_inst, n_pairs = scores.shape[1], scores.shape[2] // 2
    top = np.empty(n_pairs, np.float32)
    total = np.empty(n_pairs, np.float32)
    pooled = np.empty(n_pairs, np.float32)
    mantissa = np.empty(n_pairs, np.float32)
    bits = np.empty(n_pairs, np.int32)
    power = bits.view(np.float32)
    for b in range(first, stop):
        for k in range(n_pairs):
            top[k] = scores[b, 0, k]
        for i in range(1, n_inst):
            for k in range(n_pairs):
                top[k] = scores[b, i, k] if scores[b, i, k] > top[k] else top[k]
        total[:] = 0.0
        pooled[:] = 0.0
        for i in range(n_inst):
            for k in range(n_pairs):
                mantissa[k], bits[k] = _exp_parts(scores[b, i, k] - top[k])
            for k in range(n_pairs):
                e = mantissa[k] * power[k]
                weights[b, i, k] = e
                total[k] += e
                pooled[k] += e * scores[b, i, n_pairs + k]
        for k in range(n_pairs):
            total[k] = np.float32(1.0) / total[k]
            t[k, b] = pooled[k] * total[k]
        for i in range(n_inst):
            for k in range(n_pairs):
                weights[b, i, k] *= total[k]


@numba.njit(parallel=True, **KERNEL)
def pool_forward(scores, weights, t, n_chunks):  # pragma: no cover - compiled
    """The pooled scores t (K, B) and attention weights (B, I, K) of scores (B, I, 2K), in ``n_chunks``
    chunks of bags on numba's threads."""
    n_bags = scores.shape[0]
    step = (n_bags + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        _forward_bags(scores, weights, t, c * step, min(n_bags, (c + 1) * step))


@numba.njit(**KERNEL)
def _backward_bags(scores, weights, t, grad_t, first, stop):  # pragma: no cover - compiled
    """Bags ``first`` to ``stop``: the scores (B, I, 2K) overwritten with dL/da = w g (z - t) and
    dL/dz = w g for g = dL/dt (K, B)."""
    n_inst, n_pairs = scores.shape[1], scores.shape[2] // 2
    for b in range(first, stop):
        for i in range(n_inst):
            for k in range(n_pairs):
                wg = weights[b, i, k] * grad_t[k, b]
                scores[b, i, k] = wg * (scores[b, i, n_pairs + k] - t[k, b])
                scores[b, i, n_pairs + k] = wg


@numba.njit(parallel=True, **KERNEL)
def pool_backward(scores, weights, t, grad_t, n_chunks):  # pragma: no cover - compiled
    """:func:`_backward_bags` over all bags in ``n_chunks`` chunks (the scores are spent afterwards)."""
    n_bags = scores.shape[0]
    step = (n_bags + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        _backward_bags(scores, weights, t, grad_t, c * step, min(n_bags, (c + 1) * step))


def main() -> None:
    """The kernels against torch's pooling in double precision at the simulation's size (the checks the
    package's tests made while the kernels were in it): largest differences of t and of the gradient."""
    import torch
    from pool_kernels import attention_pool_backward_cpu, attention_pool_forward_cpu

    from mixmil_workflow.models.attention_pool import attention_pool_backward, attention_pool_forward

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 50, 30, generator=gen)
    directions = torch.randn(160, 30, generator=gen) / 30**0.5
    grad_t = torch.randn(80, 64, generator=gen)
    t, cache = attention_pool_forward_cpu(directions, x)
    grad = attention_pool_backward_cpu(cache, grad_t)
    want_t, want_cache = attention_pool_forward(directions.double(), x.double())
    want_grad = attention_pool_backward(want_cache, grad_t.double())
    print(f"t: largest difference {(t.double() - want_t).abs().max().item():.2e}")
    print(f"gradient: largest difference {(grad.double() - want_grad).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
