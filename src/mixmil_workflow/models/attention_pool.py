"""MixMIL's attention pooling t[k, b] = sum_i softmax_i(gamma_k^T x_bi) beta_k^T x_bi and its gradient.

K pairs of directions (gamma_k, beta_k) are pooled at once: K = posterior samples x outputs in training,
up to a hundred samples x outputs in prediction. Both projections are one matmul over the stacked
directions (2K, Q) and the softmax runs over a contiguous last axis (instances), the layout in which a CPU
softmax is one vectorised pass.

* Equal-size bags (B, I, Q): one block, no padding (:func:`attention_pool_forward`). On the CPU in
  float32 (every fit) the softmax, the pooled scores and the backward's products are numba kernels over
  the (instances, directions) scores (:mod:`~mixmil_workflow.models.attention_pool_kernels`: rows of 50
  instances are too short for torch's vectorised softmax); on a GPU and in float64, torch's ops.
* Bags of different sizes: the bags are sorted by size and cut into buckets, each padded to its largest
  bag (padding at most ``MAX_PADDING`` of its rows, padded logits -inf so their weight is exactly 0) and
  small enough that its scores stay in the cache (``BUCKET_SCORES`` values). Why not segment ops over the
  flat (instances, K) scores: with an index-add per reduction they make several passes over an array
  that at OneK1K's size (80 k cells x 448 directions per minibatch) is far larger than the cache, and
  their autograd graph keeps five such arrays alive; buckets make two matmuls and one softmax per bucket.

The backward is written out: dt/dz_i = w_i and dt/da_i = w_i (z_i - t) for the effect scores z and the
attention logits a, then one matmul per block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models import attention_pool_kernels as pool_kernels

MAX_PADDING = 0.125  # a bucket's padded rows over its real rows
BUCKET_SCORES = 1 << 22  # directions x padded rows per block of work (16 MB of float32 scores)
MIN_BUCKET_ROWS = 2048  # with many directions (prediction), blocks of directions keep the scores small


# equal-size bags ------------------------------------------------------------------------------------
def uses_pool_kernels(x: torch.Tensor) -> bool:
    """Whether the dense pooling of ``x`` runs through the numba kernels (float32 on the CPU, the dtype and
    device of every fit; bags with instances); elsewhere (a GPU, float64 in the tests) through torch's ops."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[1] > 0


def attention_pool_forward(directions: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """Pooled scores t (K, B) for the stacked directions (2K, Q) (the K gamma over the K beta) and bags
    x (B, I, Q) of equal size, with what :func:`attention_pool_backward` needs."""
    n_bags, n_inst, q = x.shape
    flat = x.reshape(n_bags * n_inst, q)
    if uses_pool_kernels(x):
        n_pairs = directions.shape[0] // 2
        scores = flat @ directions.T  # (instances, 2K): the kernels' layout
        exp_logits, inv_total = scores.new_empty(n_bags, n_inst, n_pairs), scores.new_empty(n_bags, n_pairs)
        t = scores.new_empty(n_pairs, n_bags)
        pool_kernels.pool_forward(
            scores.view(n_bags, n_inst, 2 * n_pairs).numpy(), exp_logits.numpy(), inv_total.numpy(), t.numpy()
        )
        return t, (flat, exp_logits, scores, t, inv_total)
    scores = (directions @ flat.T).view(2, -1, n_bags, n_inst)
    w = torch.softmax(scores[0], dim=-1)
    t = torch.linalg.vecdot(w, scores[1])  # half the time of einsum here (which lowers to tiny bmms)
    return t, (flat, w, scores, t)


def attention_pool_backward(cache: tuple, grad_t: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """Gradient (2K, Q) of <grad_t, t> with respect to the stacked directions; one matmul, no autograd
    intermediates. ``in_place`` reuses the forward's score buffer (the cache is spent afterwards)."""
    if len(cache) == 5:  # the kernels' cache
        flat, exp_logits, scores, t, inv_total = cache
        grad_scores = scores if in_place else scores.clone()
        pool_kernels.pool_backward(
            grad_scores.view(*exp_logits.shape[:2], 2 * exp_logits.shape[2]).numpy(), exp_logits.numpy(),
            inv_total.numpy(), t.numpy(), grad_t.detach().contiguous().numpy(),
        )  # fmt: skip
        return (flat.T @ grad_scores).T
    flat, w, scores, t = cache
    grad_scores = scores if in_place else torch.empty_like(scores)
    torch.sub(scores[1], t.unsqueeze(-1), out=grad_scores[0])  # z - t, before z is overwritten
    torch.mul(w, grad_t.unsqueeze(-1), out=grad_scores[1])  # d/dz = w g
    grad_scores[0].mul_(grad_scores[1])  # d/da = w g (z - t)
    # As (Q, 2K) and transposed back: with Q = 30 columns out, MKL's kernel for the direct product is
    # about 40 % slower on the 2-core CPU (same values).
    return (flat.T @ grad_scores.view(scores.shape[0] * scores.shape[1], -1).T).T


class DenseAttentionPool(torch.autograd.Function):
    """:func:`attention_pool_forward` with :func:`attention_pool_backward` as its autograd backward.
    On the 2-core CPU this step is memory-bound and the generic softmax/mul/sum autograd graph costs
    about twice as much."""

    @staticmethod
    def forward(ctx, directions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t, cache = attention_pool_forward(directions, x)
        ctx.save_for_backward(*cache)
        return t

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor):
        return attention_pool_backward(ctx.saved_tensors, grad_t), None


# bags of different sizes ----------------------------------------------------------------------------
@dataclass
class Bucket:
    """Bags of similar size padded to the largest: ``x`` (count, n_max, Q) with zero rows as padding,
    ``pad`` (count, n_max) True at padding (None without any), ``bags`` their positions in the collection
    and ``rows`` the flat instance row of every padded slot (clamped for padding)."""

    bags: torch.Tensor
    x: torch.Tensor
    pad: torch.Tensor | None
    rows: torch.Tensor


def size_buckets(sizes: np.ndarray, rows_per_bucket: int, max_padding: float = MAX_PADDING) -> list[np.ndarray]:
    """Bag positions grouped into buckets of similar size: sorted by size (stable), each bucket grown
    while its padded rows (count x largest size) stay within ``1 + max_padding`` of its real rows and
    within ``rows_per_bucket`` (a bag larger than that is a bucket of its own)."""
    order = np.argsort(sizes, kind="stable")
    sorted_sizes = sizes[order].tolist()
    buckets, start, n = [], 0, len(order)
    while start < n:
        stop, real = start + 1, sorted_sizes[start]
        while stop < n:
            largest, count = sorted_sizes[stop], stop - start + 1
            if largest * count > rows_per_bucket or largest * count > (1 + max_padding) * (real + largest):
                break
            real += largest
            stop += 1
        buckets.append(order[start:stop])
        start = stop
    return buckets


def pad_buckets(
    bags: Bags, n_directions: int, bucket_scores: int = BUCKET_SCORES, min_rows: int = MIN_BUCKET_ROWS
) -> list[Bucket]:
    """``bags`` as padded buckets for ``n_directions`` stacked directions (one bucket, unpadded, when
    all bags have one size and fit); the pooling loops over blocks of directions where a bucket's scores
    for all of them would exceed ``bucket_scores``."""
    sizes = bags.sizes.cpu().numpy()
    rows_per_bucket = max(min_rows, bucket_scores // max(1, n_directions))
    device = bags.x.device
    out = []
    for members in size_buckets(sizes, rows_per_bucket):
        member_sizes = torch.as_tensor(sizes[members], device=device)
        n_max = int(sizes[members].max())
        slots = torch.arange(n_max, device=device)
        rows = bags.offsets[:-1][torch.as_tensor(members, device=device)].unsqueeze(1) + slots
        pad = slots >= member_sizes.unsqueeze(1)
        has_pad = bool(sizes[members].min() < n_max)
        if has_pad:
            rows = rows.masked_fill(pad, 0)
        x = bags.x.index_select(0, rows.reshape(-1)).view(len(members), n_max, -1)
        if has_pad:
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        out.append(Bucket(torch.as_tensor(members, device=device), x, pad if has_pad else None, rows))
    return out


def _direction_blocks(n_pairs: int, bucket_rows: int, bucket_scores: int) -> list[tuple[int, int]]:
    """Ranges of direction pairs whose scores over a bucket's rows stay within ``bucket_scores``."""
    step = max(1, bucket_scores // max(1, 2 * bucket_rows))
    return [(k, min(k + step, n_pairs)) for k in range(0, n_pairs, step)]


def _bucket_block(
    gamma: torch.Tensor, beta: torch.Tensor | None, bucket: Bucket
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention weights w (count, k, n_max) of one bucket and one block of directions and, with
    ``beta``, the effect scores z (count, k, n_max); two matmuls, so that the softmax runs on a
    contiguous tensor."""
    x_t = bucket.x.transpose(1, 2)
    logits = torch.matmul(gamma, x_t)
    if bucket.pad is not None:
        logits.masked_fill_(bucket.pad.unsqueeze(1), float("-inf"))  # padded slots get weight exactly 0
    w = torch.softmax(logits, dim=-1)
    return w, (None if beta is None else torch.matmul(beta, x_t))


def padded_attention_pool_forward(
    directions: torch.Tensor,
    buckets: list[Bucket],
    n_bags: int,
    keep: bool = True,
    bucket_scores: int = BUCKET_SCORES,
) -> tuple[torch.Tensor, tuple | None]:
    """Pooled scores t (K, B) of every bag over the buckets and, with ``keep``, what the backward needs:
    the attention-weighted instance means m1 = sum_i w_i x_i and m2 = sum_i w_i z_i x_i per bag and
    direction pair (in bucket order, (B, K, Q)), from which dt/dbeta = m1 and dt/dgamma = m2 - t m1.
    Keeping these moments instead of the (instances, K) weights and scores lets every bucket's scores
    die in the cache."""
    n_pairs = directions.shape[0] // 2
    gamma, beta = directions[:n_pairs], directions[n_pairs:]
    t = directions.new_empty(n_pairs, n_bags)
    m1, m2 = [], []
    for bucket in buckets:
        count, n_max, _ = bucket.x.shape
        parts1, parts2 = [], []
        for lo, hi in _direction_blocks(n_pairs, count * n_max, bucket_scores):
            # Prediction needs no effect scores z: t comes from the weighted mean of the instances.
            w, z = _bucket_block(gamma[lo:hi], beta[lo:hi] if keep else None, bucket)
            mean = torch.matmul(w, bucket.x)  # (count, k, Q): padded slots have w = 0 and x = 0
            t[lo:hi, bucket.bags] = torch.linalg.vecdot(mean, beta[lo:hi]).T  # t = beta^T sum_i w_i x_i
            if keep:
                parts1.append(mean)
                parts2.append(torch.matmul(z.mul_(w), bucket.x))
        if keep:
            m1.append(parts1[0] if len(parts1) == 1 else torch.cat(parts1, 1))
            m2.append(parts2[0] if len(parts2) == 1 else torch.cat(parts2, 1))
    if not keep:
        return t, None
    order = torch.cat([bucket.bags for bucket in buckets])
    return t, (order, t[:, order].T, torch.cat(m1), torch.cat(m2))


def padded_attention_pool_backward(moments: tuple, grad_t: torch.Tensor) -> torch.Tensor:
    """Gradient (2K, Q) of <grad_t, t> with respect to the stacked directions, from the forward's
    moments: sum_b g_kb (m2_bk - t_bk m1_bk) for gamma_k and sum_b g_kb m1_bk for beta_k."""
    order, t, m1, m2 = moments
    g = grad_t[:, order].T.unsqueeze(-1)  # (B, K, 1) in bucket order
    grad_beta = (g * m1).sum(0)
    grad_gamma = (g * m2).sum(0) - ((g * t.unsqueeze(-1)) * m1).sum(0)
    return torch.cat([grad_gamma, grad_beta], 0)


class PaddedAttentionPool(torch.autograd.Function):
    """The bucketed pooling with its written-out backward, for autograd callers (``MixMILModule.loss``)."""

    @staticmethod
    def forward(ctx, directions: torch.Tensor, buckets: list, n_bags: int) -> torch.Tensor:
        t, moments = padded_attention_pool_forward(directions, buckets, n_bags)
        ctx.save_for_backward(*moments)
        return t

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor):
        return padded_attention_pool_backward(ctx.saved_tensors, grad_t), None, None


def _write_slots(out: torch.Tensor, bucket: Bucket, columns: slice, values: torch.Tensor) -> None:
    """Write per-slot ``values`` (count * n_max, k) of a bucket into the instance rows of ``out``
    (instances, ...) at ``columns``, skipping the padded slots."""
    rows = bucket.rows.reshape(-1)
    if bucket.pad is None:
        out[rows, columns] = values
    else:
        real = ~bucket.pad.reshape(-1)
        out[rows[real], columns] = values[real]


def padded_attention_weights(
    gamma: torch.Tensor, bags: Bags, buckets: list[Bucket], bucket_scores: int = BUCKET_SCORES
) -> torch.Tensor:
    """softmax over each bag's instances of ``bags.x @ gamma.T``, shape (n_instances, K), from buckets
    built for ``gamma`` (K, Q)."""
    out = gamma.new_empty(bags.n_instances, gamma.shape[0])
    for bucket in buckets:
        count, n_max, _ = bucket.x.shape
        for lo, hi in _direction_blocks(gamma.shape[0], count * n_max, 2 * bucket_scores):
            w, _ = _bucket_block(gamma[lo:hi], None, bucket)
            _write_slots(out, bucket, slice(lo, hi), w.transpose(1, 2).reshape(count * n_max, hi - lo))
    return out


def padded_attention_pass(
    gamma: torch.Tensor,
    beta: torch.Tensor | None,
    bags: Bags,
    summarise=None,
    n_stats: int = 0,
    bucket_scores: int = BUCKET_SCORES,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One pass over padded buckets for the directions ``gamma`` and ``beta`` (S, P, Q) of S posterior
    samples: with ``beta``, the pooled scores t (S, P, B); with ``summarise``, statistics over the samples
    of the attention weights, shape (n_stats, n_instances, P). ``summarise`` maps a stack (bags, S, M) of
    weights (samples on axis -2, one column per output and padded instance slot) to ``n_stats`` tensors
    (bags, M).

    Prediction asks for both (bag predictions and instance weights of the same bags): each bucket's
    weights are computed once and serve both, where two passes would repeat the attention matmul and
    softmax. The weights of all S samples of an output are computed together, so no (instances, S, P)
    tensor is ever built and the statistics are read where the softmax wrote them. The buckets depend on
    the directions only through their count (2 S P), so t does not depend on whether statistics are asked.
    """
    n_samples, n_outputs, q = gamma.shape
    t = None if beta is None else gamma.new_empty(n_samples, n_outputs, bags.n_bags)
    stats = None if summarise is None else gamma.new_empty(n_stats, bags.n_instances, n_outputs)
    for bucket in pad_buckets(bags, 2 * n_samples * n_outputs, bucket_scores):
        count, n_max, _ = bucket.x.shape
        step = max(1, bucket_scores // max(1, 2 * n_samples * count * n_max))  # outputs per block
        for lo in range(0, n_outputs, step):
            hi = min(lo + step, n_outputs)
            w, _ = _bucket_block(gamma[:, lo:hi].reshape(-1, q), None, bucket)  # (count, S * k, n_max)
            if t is not None:
                mean = torch.matmul(w, bucket.x)  # (count, S * k, Q): padded slots have w = 0 and x = 0
                pooled = torch.linalg.vecdot(mean, beta[:, lo:hi].reshape(-1, q))  # t = beta^T sum_i w_i x_i
                t[:, lo:hi, bucket.bags] = pooled.T.view(n_samples, hi - lo, count)
            if stats is not None:
                for i, stat in enumerate(summarise(w.view(count, n_samples, (hi - lo) * n_max))):
                    stat = stat.view(count, hi - lo, n_max).transpose(1, 2).reshape(count * n_max, hi - lo)
                    _write_slots(stats[i], bucket, slice(lo, hi), stat)
    return t, stats
