"""Bags of instance embeddings in one flat matrix (CSR layout).

A bag collection holds all instances in one ``(n_instances, Q)`` tensor, the instances of bag ``b``
in rows ``offsets[b]:offsets[b + 1]``. Variable bag sizes cost nothing extra, a subset of bags is one
gather, and equal-size collections expose a zero-copy ``(n_bags, I, Q)`` view for the fast path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mixmil_workflow.models.segment import segment_argmax, segment_softmax, segment_sum


class BagError(ValueError):
    """Invalid bag input (empty bag, non-finite values, shape mismatch)."""


@dataclass(eq=False)
class Bags:
    """A collection of bags. Build it with :meth:`from_list`, :meth:`from_dense` or
    :meth:`from_instances` rather than directly."""

    x: torch.Tensor
    offsets: torch.Tensor
    _index: torch.Tensor | None = field(default=None, repr=False)
    _common_size: int | None = field(default=None, repr=False)  # 0: sizes differ; None: not yet known

    def __post_init__(self) -> None:
        if self.x.ndim != 2:
            raise BagError(f"instance matrix must be 2-D (n_instances, n_features), got {tuple(self.x.shape)}")
        if self.offsets.ndim != 1 or self.offsets.numel() < 2:
            raise BagError("offsets must be a 1-D tensor with at least two entries (one bag)")
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != self.x.shape[0]:
            raise BagError("offsets must start at 0 and end at the number of instances")
        sizes = self.sizes
        if bool((sizes <= 0).any()):
            empty = torch.nonzero(sizes <= 0).flatten()[:5].tolist()
            raise BagError(f"bags {empty} have no instances; every bag needs at least one instance")
        self.offsets = self.offsets.to(device=self.x.device, dtype=torch.long)

    # construction -------------------------------------------------------------------------------
    @classmethod
    def from_list(cls, bags: Sequence[np.ndarray | torch.Tensor], dtype: torch.dtype = torch.float32) -> Bags:
        """One ``(I_b, Q)`` array per bag."""
        if len(bags) == 0:
            raise BagError("no bags given")
        tensors = [torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b, dtype=dtype) for b in bags]
        for i, t in enumerate(tensors):
            if t.ndim != 2:
                raise BagError(f"bag {i} must be 2-D (instances, features), got shape {tuple(t.shape)}")
        sizes = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        return cls(_checked(torch.cat(tensors, 0)), offsets)

    @classmethod
    def from_dense(cls, x: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> Bags:
        """Equal-size bags as one ``(n_bags, I, Q)`` array."""
        x = torch.as_tensor(x, dtype=dtype)
        if x.ndim != 3:
            raise BagError(f"dense bags must be 3-D (bags, instances, features), got {tuple(x.shape)}")
        n, i, q = x.shape
        offsets = torch.arange(n + 1, dtype=torch.long) * i
        return cls(_checked(x.reshape(n * i, q).contiguous()), offsets)

    @classmethod
    def from_instances(
        cls,
        x: np.ndarray | torch.Tensor,
        bag_ids: Sequence | np.ndarray,
        bag_order: Sequence | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Bags, np.ndarray]:
        """Instances with a bag id each (e.g. an AnnData ``obs`` column).

        Returns the bags and the bag ids in bag order (``bag_order`` if given, else sorted ids).
        """
        ids = np.asarray(bag_ids)
        if ids.shape[0] != len(x):
            raise BagError(f"{len(x)} instances but {ids.shape[0]} bag ids")
        order_ids = np.unique(ids) if bag_order is None else np.asarray(bag_order)
        codes = {b: k for k, b in enumerate(order_ids.tolist())}
        try:
            code = np.fromiter((codes[b] for b in ids.tolist()), dtype=np.int64, count=ids.shape[0])
        except KeyError as err:
            raise BagError(f"instance bag id {err.args[0]!r} is not in the bag order") from None
        perm = np.argsort(code, kind="stable")
        sizes = np.bincount(code, minlength=len(order_ids))
        offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.long)
        xt = torch.as_tensor(np.asarray(x), dtype=dtype)[torch.as_tensor(perm)]
        return cls(_checked(xt), offsets), order_ids

    # shape --------------------------------------------------------------------------------------
    @property
    def n_bags(self) -> int:
        return self.offsets.numel() - 1

    @property
    def n_instances(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @property
    def sizes(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def index(self) -> torch.Tensor:
        """Bag index of every instance (n_instances,)."""
        if self._index is None:
            self._index = torch.repeat_interleave(torch.arange(self.n_bags, device=self.x.device), self.sizes)
        return self._index

    @property
    def common_size(self) -> int:
        """The number of instances of every bag when all bags have the same size, else 0 (computed once:
        the per-bag operations ask on every forward pass)."""
        if self._common_size is None:
            sizes = self.sizes
            self._common_size = int(sizes[0]) if bool((sizes == sizes[0]).all()) else 0
        return self._common_size

    @property
    def is_equal_size(self) -> bool:
        return self.common_size > 0

    def dense(self) -> torch.Tensor:
        """Zero-copy ``(n_bags, I, Q)`` view; only for equal-size bags."""
        if not self.is_equal_size:
            raise BagError("bags differ in size; a dense view needs equal-size bags")
        return self.x.view(self.n_bags, self.common_size, self.n_features)

    # per-bag operations on per-instance values ---------------------------------------------------
    # ``values`` has one row per instance (n_instances, ...), in this collection's order. Equal-size
    # bags take a dense (n_bags, I, ...) view and one reduction over its instance axis; bags of
    # different sizes take the segment ops. The two agree to float rounding (the order of a sum's
    # terms differs), and every model that pools through these gets the dense path for free.
    def _per_bag(self, values: torch.Tensor) -> torch.Tensor:
        return values.reshape(self.n_bags, self.common_size, *values.shape[1:])

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax of ``logits`` over the instances of each bag, shape of ``logits``."""
        if not self.is_equal_size:
            return segment_softmax(logits, self.offsets, self.index)
        return torch.softmax(self._per_bag(logits), 1).view(logits.shape)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over the instances of each bag, shape (n_bags, ...)."""
        if not self.is_equal_size:
            return segment_sum(values, self.offsets, self.index)
        return self._per_bag(values).sum(1)

    def argmax(self, values: torch.Tensor) -> torch.Tensor:
        """Row (in ``values``) of each bag's first maximal instance, per trailing index: shape
        (n_bags, ...), long. The first of tied maxima, as ``torch.argmax``."""
        if not self.is_equal_size:
            return segment_argmax(values.detach(), self.offsets, self.index)
        first = self.offsets[:-1].view(-1, *([1] * (values.ndim - 1)))
        return self._per_bag(values.detach()).argmax(1) + first

    def __len__(self) -> int:
        return self.n_bags

    # operations ---------------------------------------------------------------------------------
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Bags:
        x = self.x.to(device=device, dtype=dtype)
        if x is self.x:
            return self
        return Bags(x, self.offsets.to(x.device))

    def subset(self, bags: Sequence[int] | np.ndarray | torch.Tensor) -> Bags:
        """The bags at the given positions, in that order (copies their instances once)."""
        if isinstance(bags, torch.Tensor):  # an index tensor may live on another device (e.g. a GPU's)
            idx = bags.to(device=self.x.device, dtype=torch.long)
        else:
            idx = torch.as_tensor(np.asarray(bags), dtype=torch.long, device=self.x.device)
        if idx.ndim != 1 or idx.numel() == 0:
            raise BagError("a subset needs a non-empty 1-D list of bag positions")
        if self.is_equal_size:
            # A gather of validated rows: no second NaN/Inf scan (this runs every training step).
            size = self.common_size
            offsets = torch.arange(idx.numel() + 1, device=self.x.device) * size
            return Bags(self.dense()[idx].reshape(-1, self.n_features), offsets, _common_size=size)
        starts, sizes = self.offsets[:-1][idx], self.sizes[idx]
        offsets = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])
        within = torch.arange(int(offsets[-1]), device=self.x.device) - torch.repeat_interleave(offsets[:-1], sizes)
        rows = torch.repeat_interleave(starts, sizes) + within
        return Bags(self.x.index_select(0, rows), offsets)

    def mean_pool(self) -> torch.Tensor:
        """Mean instance embedding of every bag (n_bags, Q)."""
        if self.is_equal_size:
            return self.dense().mean(1)
        return self.sum(self.x) / self.sizes.unsqueeze(1).to(self.x.dtype)

    def chunks(self, max_instances: int = 200_000) -> Iterator[tuple[int, int]]:
        """Consecutive bag ranges ``[start, stop)`` holding at most ``max_instances`` instances
        (a single larger bag forms its own chunk), to bound memory when scoring many bags."""
        offsets = self.offsets.tolist()
        start = 0
        while start < self.n_bags:
            stop = start + 1
            while stop < self.n_bags and offsets[stop + 1] - offsets[start] <= max_instances:
                stop += 1
            yield start, stop
            start = stop

    def slice(self, start: int, stop: int) -> Bags:
        """Bags ``start:stop`` as a view (no copy)."""
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return Bags(self.x[lo:hi], self.offsets[start : stop + 1] - lo)


def minibatches(perm: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split a permutation of bag positions into minibatches; a trailing batch of one bag joins the
    previous batch (minibatch statistics such as MixMIL's standardisation need at least two bags)."""
    batches = list(torch.split(perm, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = torch.cat([batches[-2], batches.pop()])
    return batches


def _checked(x: torch.Tensor) -> torch.Tensor:
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = torch.nonzero(~torch.isfinite(x))[0].tolist()
        raise BagError(
            f"instance embeddings contain NaN or Inf (first at instance {bad[0]}, feature {bad[1]}); "
            "remove or impute those instances before building bags"
        )
    return x
