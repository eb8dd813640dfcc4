"""The softmax, pooled scores and backward of MixMIL's attention pooling of equal-size bags on the CPU
(float32), as two serial numba kernels between the pooling's two matrix products.

At the simulation's size a training step pools 64 bags of 50 instances for 80 direction pairs (8
posterior samples x 10 outputs). Laid out as (directions, bags, instances), torch's softmax runs over
rows of 50, too short for its vector loops (remainders on every row), and the pooled scores and the
backward's products are three more passes: at one thread 0.38 ms of a 1.2 ms pooling went to the
softmax and the pooled scores, 0.12 ms to the backward's products. Here the scores are (instances,
directions), as ``x @ directions.T`` gives them, and each kernel walks a bag's instances once with the
vector lanes across the directions: 0.14 and 0.10 ms (benchmarks/investigations/mixmil_cpu_step, "Sixth
look"). The values are the softmax's to float32 rounding, not torch's bit for bit.

Why serial (no numba threads): numba's OpenMP team has a thread per CPU the process may use, not
torch's thread count, and its idle members spin beside torch's threads (a pooling took 20 ms instead of
3.5 with 8 numba threads on 2 cores; "Fourth look"). Serial kernels also make the numbers independent of
the thread count. Why a hand-written exp: numba has no vectorised exp without Intel's SVML, and libm's
expf, one call per score, cost more than torch's whole softmax; ``_exp_parts`` is the Cephes
single-precision polynomial (relative error about 1e-7, as expf's) for the arguments <= 0 of a softmax
shifted by its maximum. fastmath is contraction only (fused multiply-adds): no sum is reordered, and NaN
and infinity keep their meaning, so a diverging fit still stops at the training loop's non-finite check.
numba compiles the kernels once per environment and caches them (``NUMBA_CACHE_DIR`` moves the cache).
"""

from __future__ import annotations

import numba
import numpy as np

KERNEL = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693359375)  # ln 2 in two parts, as Cephes: the high part exact in float32
LN2_LO = np.float32(-2.12194440e-4)
EXP_FLOOR = np.float32(-87.33)  # below it exp underflows the smallest normal float32
P0, P1, P2, P3, P4, P5 = (
    np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 0.5)
)


@numba.njit(inline="always", **KERNEL)
def _exp_parts(v):  # pragma: no cover - compiled
    """exp(v) for float32 v <= 0 as (m, e) with exp(v) = m * 2**n and e the float32 bits of 2**n; the
    caller multiplies through a float32 view of the bits (numba has no scalar bit cast)."""
    v = EXP_FLOOR if v < EXP_FLOOR else v  # this order keeps NaN
    n = np.floor(v * LOG2E + np.float32(0.5))
    r = v - n * LN2_HI - n * LN2_LO
    poly = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5
    return poly * r * r + r + np.float32(1.0), (np.int32(n) + np.int32(127)) << 23


@numba.njit(**KERNEL)
def pool_forward(scores, exp_logits, inv_total, t):  # pragma: no cover - compiled
    """For scores (B, I, 2K), the attention logits a then the effect scores z of every instance: writes
    exp_logits[b, i, k] = exp(a_bik - max_i a_bik) (B, I, K), inv_total[b, k] = 1 / sum_i exp_logits[b, i, k]
    (B, K) and the pooled scores t[k, b] = inv_total[b, k] sum_i exp_logits[b, i, k] z_bik (K, B)."""
    n_bags, n_inst, n_pairs = scores.shape[0], scores.shape[1], scores.shape[2] // 2
    top = np.empty(n_pairs, np.float32)
    total = np.empty(n_pairs, np.float32)
    pooled = np.empty(n_pairs, np.float32)
    mantissa = np.empty(n_pairs, np.float32)
    bits = np.empty(n_pairs, np.int32)
    power = bits.view(np.float32)
    for b in range(n_bags):
        for k in range(n_pairs):
            top[k] = scores[b, 0, k]
        for i in range(1, n_inst):
            for k in range(n_pairs):
                top[k] = scores[b, i, k] if scores[b, i, k] > top[k] else top[k]
        total[:] = 0.0
        pooled[:] = 0.0
        for i in range(n_inst):
            # Two loops: the exp's parts first, so that both vectorise across the directions.
            for k in range(n_pairs):
                mantissa[k], bits[k] = _exp_parts(scores[b, i, k] - top[k])
            for k in range(n_pairs):
                e = mantissa[k] * power[k]
                exp_logits[b, i, k] = e
                total[k] += e
                pooled[k] += e * scores[b, i, n_pairs + k]
        for k in range(n_pairs):
            inv = np.float32(1.0) / total[k]
            inv_total[b, k] = inv
            t[k, b] = pooled[k] * inv


@numba.njit(**KERNEL)
def pool_backward(scores, exp_logits, inv_total, t, grad_t):  # pragma: no cover - compiled
    """Overwrites the scores (B, I, 2K) with the gradient of <grad_t, t> (grad_t (K, B)) with respect to
    them: dL/da = w g (z - t) for the logits, dL/dz = w g for the effect scores, where w = exp_logits *
    inv_total is the attention weight. In place, on one array (with a second output array numba's loops
    check for aliasing and lose their vectorisation)."""
    n_bags, n_inst, n_pairs = scores.shape[0], scores.shape[1], scores.shape[2] // 2
    scaled_grad = np.empty(n_pairs, np.float32)
    pooled = np.empty(n_pairs, np.float32)
    for b in range(n_bags):
        for k in range(n_pairs):
            scaled_grad[k] = grad_t[k, b] * inv_total[b, k]
            pooled[k] = t[k, b]
        for i in range(n_inst):
            for k in range(n_pairs):
                wg = exp_logits[b, i, k] * scaled_grad[k]
                scores[b, i, k] = wg * (scores[b, i, n_pairs + k] - pooled[k])
                scores[b, i, n_pairs + k] = wg
