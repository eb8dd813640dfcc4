"""Segment (per-bag) reductions over a flat instance matrix.

Bags of different sizes are stored as one flat ``(n_instances, ...)`` tensor plus bag offsets
(CSR layout). The two operations MIL needs are a softmax within each bag and a sum within each bag.

Two backends give the same numbers:

* ``"torch"`` (default): native ``torch.segment_reduce`` / ``index_add``. Measured on the project's
  2-core CPU at OneK1K scale it is at least as fast as torch-scatter (see shared environment notes),
  and it needs no compiled extension.
* ``"scatter"``: torch-scatter's ``scatter_softmax`` / ``segment_csr``, available with the optional
  ``[scatter]`` extra. Kept for users who already run torch-scatter and as a cross-check in the tests.
"""

from __future__ import annotations

import torch

BACKENDS = ("torch", "scatter")


def has_torch_scatter() -> bool:
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        return False
    return True


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"segment backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "scatter" and not has_torch_scatter():
        raise ImportError(
            "segment backend 'scatter' needs torch-scatter; install it with "
            "`pip install --no-build-isolation torch-scatter` (extra [scatter]) or use backend='torch'"
        )


def segment_sum(
    values: torch.Tensor, offsets: torch.Tensor, index: torch.Tensor, backend: str = "torch"
) -> torch.Tensor:
    """Sum ``values`` (n_instances, ...) within each bag -> (n_bags, ...)."""
    _check_backend(backend)
    n_bags = offsets.numel() - 1
    if backend == "scatter":
        import torch_scatter

        return torch_scatter.segment_csr(values, offsets, reduce="sum")
    out = values.new_zeros((n_bags, *values.shape[1:]))
    # index_add_ is differentiable and deterministic on the CPU; segment_reduce's backward is not
    # implemented for every dtype/device pair.
    return out.index_add_(0, index, values)


def segment_max(values: torch.Tensor, offsets: torch.Tensor, backend: str = "torch") -> torch.Tensor:
    """Maximum of ``values`` within each bag (no gradient needed: used as a stabiliser)."""
    _check_backend(backend)
    if backend == "scatter":
        import torch_scatter

        return torch_scatter.segment_csr(values, offsets, reduce="max")
    lengths = offsets[1:] - offsets[:-1]
    return torch.segment_reduce(values, "max", lengths=lengths, axis=0, unsafe=True)


def segment_argmax(values: torch.Tensor, offsets: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Row of each bag's first maximal instance in ``values`` (n_instances, ...), per trailing index:
    (n_bags, ...), long (no gradient; the first of tied maxima, as ``torch.argmax``)."""
    best = segment_max(values, offsets).index_select(0, index)
    shape = (-1, *([1] * (values.ndim - 1)))
    rows = torch.arange(len(values), device=values.device).view(shape).expand_as(values)
    candidates = torch.where(values == best, rows, torch.full_like(rows, len(values)))
    # segment_reduce has no integer min on the CPU; scatter_reduce does.
    first = torch.full((offsets.numel() - 1, *values.shape[1:]), len(values), dtype=torch.long, device=values.device)
    return first.scatter_reduce_(0, index.view(shape).expand_as(candidates), candidates, "amin")


def segment_softmax(
    logits: torch.Tensor, offsets: torch.Tensor, index: torch.Tensor, backend: str = "torch"
) -> torch.Tensor:
    """Softmax of ``logits`` (n_instances, ...) over the instances of each bag."""
    _check_backend(backend)
    if backend == "scatter":
        import torch_scatter

        return torch_scatter.scatter_softmax(logits, index, dim=0)
    # Subtracting the per-bag maximum changes nothing mathematically and keeps exp() finite.
    shift = segment_max(logits.detach(), offsets, backend).index_select(0, index)
    unnorm = torch.exp(logits - shift)
    norm = segment_sum(unnorm, offsets, index, backend).index_select(0, index)
    return unnorm / norm
