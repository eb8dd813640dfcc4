"""Prototype (not used by the package): the (gated) attention scores of Ilse et al. for P stacked networks
with a hand-written CPU backward, measured by ``cpu_floors.py`` against the autograd path.

    e_i = w^T [tanh(V h_i + b_V) * sigmoid(U h_i + b_U)] + b_w       (the gate only in Gated ABMIL)

ABMIL, Gated ABMIL and Additive MIL score instances this way. Through autograd this head is some fifteen
passes over the (instances, nets, L) activations, and torch's CPU ``tanh`` does not vectorise. Here the
two projections stay torch matrix products (``baddbmm``, bias included), the tanh is numpy's (vectorised,
within an ulp of torch's), and the rest of the forward and the whole elementwise backward are one numba
loop each. The values agree with :func:`attention_scores_reference` to float rounding, not bit for bit,
which is why the package does not use it (see README.md, "Fourth look").
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from mixmil_workflow.models.mixmil_step_kernels import KERNEL  # the package's numba settings


def attention_scores_reference(h, att_v, att_vb, att_w, att_wb, att_u=None, att_ub=None) -> torch.Tensor:
    """Scores (instances, nets) for encoded instances ``h`` (instances, nets, H) through autograd."""
    v = torch.tanh(torch.einsum("rnh,nhl->rnl", h, att_v) + att_vb)
    if att_u is not None:
        v = v * torch.sigmoid(torch.einsum("rnh,nhl->rnl", h, att_u) + att_ub)
    return (v * att_w).sum(-1) + att_wb


def attention_scores(h, att_v, att_vb, att_w, att_wb, att_u=None, att_ub=None) -> torch.Tensor:
    """Scores (instances, nets): the fused CPU function on a CPU, the autograd path elsewhere.

    ``att_v``/``att_u`` (nets, H, L), ``att_vb``/``att_ub``/``att_w`` (nets, L), ``att_wb`` (nets,)."""
    if h.device.type != "cpu" or h.dtype not in (torch.float32, torch.float64):
        return attention_scores_reference(h, att_v, att_vb, att_w, att_wb, att_u, att_ub)
    return _AttentionScores.apply(h, att_v, att_vb, att_w, att_wb, att_u, att_ub)


def _project(h_by_net: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """bias + h W per net: (nets, instances, L), contiguous."""
    return torch.baddbmm(bias.unsqueeze(1), h_by_net, weight)


def _tanh_(values: torch.Tensor) -> torch.Tensor:
    """In-place tanh through numpy's vectorised loop (torch's CPU tanh is scalar; see the module doc)."""
    array = values.numpy()
    np.tanh(array, out=array)
    return values


class _AttentionScores(torch.autograd.Function):
    """The head with the gate (``att_u``, ``att_ub``) or without it (both None)."""

    @staticmethod
    def forward(ctx, h, att_v, att_vb, att_w, att_wb, att_u, att_ub):
        h_by_net = h.transpose(0, 1)
        t = _tanh_(_project(h_by_net, att_v.detach(), att_vb.detach()))
        g = t[:0] if att_u is None else _project(h_by_net, att_u.detach(), att_ub.detach()).sigmoid_()
        scores = torch.empty(h.shape[0], h.shape[1], dtype=h.dtype)
        _scores_forward(t.numpy(), g.numpy(), att_w.detach().numpy(), att_wb.detach().numpy(), scores.numpy())
        ctx.save_for_backward(h, t, g, att_v, att_w, att_u)
        return scores

    @staticmethod
    def backward(ctx, grad_scores):
        h, t, g, att_v, att_w, att_u = ctx.saved_tensors
        grads = _ScoreGrads(t, gated=att_u is not None)
        _scores_backward(
            np.ascontiguousarray(grad_scores.numpy()), t.numpy(), g.numpy(), att_w.detach().numpy(),
            grads.pre_v.numpy(), grads.pre_u.numpy(), grads.w.numpy(), grads.wb.numpy(), grads.vb.numpy(),
            grads.ub.numpy(),
        )  # fmt: skip
        h_by_net = h.transpose(0, 1)
        grad_h = torch.bmm(grads.pre_v, att_v.detach().transpose(1, 2))
        grad_v = torch.bmm(h_by_net.transpose(1, 2), grads.pre_v)
        if att_u is None:
            return grad_h.transpose(0, 1), grad_v, grads.vb, grads.w, grads.wb, None, None
        grad_h = torch.baddbmm(grad_h, grads.pre_u, att_u.detach().transpose(1, 2))
        grad_u = torch.bmm(h_by_net.transpose(1, 2), grads.pre_u)
        return grad_h.transpose(0, 1), grad_v, grads.vb, grads.w, grads.wb, grad_u, grads.ub


class _ScoreGrads:
    """Buffers the backward kernel fills: the projections' pre-activation gradients (nets, instances, L)
    and the gradients of the biases and of w."""

    def __init__(self, t: torch.Tensor, gated: bool):
        n_nets, _, width = t.shape
        self.pre_v = torch.empty_like(t)
        self.pre_u = torch.empty_like(t) if gated else t.new_empty(0, 0, 0)
        self.w = t.new_empty(n_nets, width)
        self.wb = t.new_empty(n_nets)
        self.vb = t.new_empty(n_nets, width)
        self.ub = t.new_empty(n_nets, width) if gated else t.new_empty(0, 0)


@numba.njit(**KERNEL)
def _scores_forward(t, g, w, wb, scores):  # pragma: no cover - compiled
    """scores[r, k] = wb[k] + sum_l w[k, l] t[k, r, l] (g[k, r, l] when gated, i.e. ``g`` not empty)."""
    n_nets, n_rows, width = t.shape
    gated = g.shape[0] > 0
    for k in range(n_nets):
        for r in range(n_rows):
            acc = np.float64(0.0)
            if gated:
                for j in range(width):
                    acc += w[k, j] * t[k, r, j] * g[k, r, j]
            else:
                for j in range(width):
                    acc += w[k, j] * t[k, r, j]
            scores[r, k] = acc + wb[k]


@numba.njit(**KERNEL)
def _scores_backward(
    grad_scores, t, g, w, grad_pre_v, grad_pre_u, grad_w, grad_wb, grad_vb, grad_ub
):  # pragma: no cover
    """Given dL/dscores (instances, nets): dL/d(V h + b_V) and dL/d(U h + b_U) per net and instance, and
    the sums over instances that are the gradients of b_V, b_U, w and b_w (accumulated in double)."""
    n_nets, n_rows, width = t.shape
    gated = g.shape[0] > 0
    acc_w = np.empty(width)
    acc_vb = np.empty(width)
    acc_ub = np.empty(width)
    for k in range(n_nets):
        acc_w[:] = 0.0
        acc_vb[:] = 0.0
        acc_ub[:] = 0.0
        acc_wb = np.float64(0.0)
        for r in range(n_rows):
            gs = grad_scores[r, k]
            acc_wb += gs
            if gated:
                for j in range(width):
                    tj = t[k, r, j]
                    gj = g[k, r, j]
                    acc_w[j] += gs * (tj * gj)
                    d = gs * w[k, j]
                    dv = d * gj * (1 - tj * tj)
                    du = d * tj * gj * (1 - gj)
                    grad_pre_v[k, r, j] = dv
                    grad_pre_u[k, r, j] = du
                    acc_vb[j] += dv
                    acc_ub[j] += du
            else:
                for j in range(width):
                    tj = t[k, r, j]
                    acc_w[j] += gs * tj
                    dv = gs * w[k, j] * (1 - tj * tj)
                    grad_pre_v[k, r, j] = dv
                    acc_vb[j] += dv
        grad_wb[k] = acc_wb
        for j in range(width):
            grad_w[k, j] = acc_w[j]
            grad_vb[k, j] = acc_vb[j]
            if gated:
                grad_ub[k, j] = acc_ub[j]


def main() -> None:
    """Check the prototype against autograd on small random stacks: largest difference of the scores and
    of every gradient, plain and gated."""
    gen = torch.Generator().manual_seed(0)
    n_nets, n_rows, hidden, width = 3, 40, 5, 7
    for gated in (False, True):
        h = torch.randn(n_rows, n_nets, hidden, generator=gen).requires_grad_()
        shapes = [(n_nets, hidden, width), (n_nets, width), (n_nets, width), (n_nets,)]
        shapes += [(n_nets, hidden, width), (n_nets, width)] if gated else []
        params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
        weights = torch.randn(n_rows, n_nets, generator=gen)
        results = []
        for f in (attention_scores, attention_scores_reference):
            scores = f(h, *params)
            results.append([scores, *torch.autograd.grad((scores * weights).sum(), [h, *params])])
        diffs = [(a - b).abs().max().item() for a, b in zip(*results, strict=True)]
        print(f"{'gated' if gated else 'plain'}: scores {diffs[0]:.1e}, gradients up to {max(diffs[1:]):.1e}")


if __name__ == "__main__":
    main()
