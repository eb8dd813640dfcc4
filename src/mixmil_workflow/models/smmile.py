"""SMMILe (Gao et al. 2024) in its three forms, written from the paper and ``shared/reference/models.md``
section 6: ``binary`` (the reference's ``SMMILe_SINGLE``: one detector stream, sigmoid classifier),
``multiclass`` (subtyping: C detector streams, classifier softmax over the C categories, one category per
slide) and ``multilabel`` (C streams, sigmoid per category, a slide may hold several categories or none).

A slide's patch embeddings are placed on their 2-D grid (NIC) and passed through a convolution (3 x 3
mixes each patch with its 8 neighbours; 1 x 1 is the reference's "big" CAMELYON setting), BatchNorm,
ReLU and dropout. From the tissue positions' features h_i: a gated attention detector with one stream per
category, det_ic = softmax_i d_ic, and an instance classifier cls_ic (sigmoid, or softmax over c for
multiclass); instance score s_ic = cls_ic det_ic; slide probability P_c = clamp(sum_i s_ic).

Stage 1 trains on BCE(P, y) plus BCE of extra copies of P (one-hot or multi-hot y):
- parameter-free instance dropout, per labelled category: instance i kept when u_ic > min-max-normalised
  s_ic (binary, multiclass); multilabel drops on the detector side, the survivors' attention re-normalised,
  for the categories both labelled and predicted;
- delocalised sampling of one instance per SLIC superpatch (G groups, the detector's softmax over the
  sampled sub-bag), each group also with its dropout copy (binary: only when its P > 0.5);
- on negative slides (binary label 0, an empty multi-label set) a consistency loss MSE(d_i, mean d)
  instead of the copies.
Binary: L = BCE(P0) + mean of the copies' BCE; multiclass / multilabel: the mean over P0 and the copies
(``bag_loss: bibce``: the copies under the bi-tempered logistic loss, t1 = 0.2, t2 = 1).
Stage 2 starts from stage 1's best weights and adds ``n_refs`` refinement layers (Linear h -> C + 1, the
last column background) trained on pseudo-labels per category (layer 0 from the min-max-normalised s, later
layers from the previous layer's probabilities) and the MRF energy (0.8 unary within superpatches + 0.2
pairwise between adjacent superpatches, with random deletion of terms in proportion to their size).
Instance scores (patches, C): stage 1, min-max-normalised s (``sp_smooth``: each patch the mean over
groups of its superpatch's sampled score); stage 2, the last refinement layer's category probabilities.

Training as the reference: Adam, one slide per step, a class-balanced sampler of slides with replacement
(``weighted_sample``), ReduceLROnPlateau and early stopping on the validation loss of a held-out share of
the training slides (``validation_fraction``; stratified, seeded), the best epoch's weights kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.io import resolve_device
from mixmil_workflow.models.base import MILModel, Prediction, regress_out_covariates
from mixmil_workflow.models.neural import Dropout
from mixmil_workflow.models.options import SMMILeConfig
from mixmil_workflow.models.persistence import as_array, load_model, save_model, state_dict_cpu
from mixmil_workflow.models.training import train_epochs

EPS = 1e-10
FORMS = ("binary", "multiclass", "multilabel")


@dataclass
class SlideGrid:
    """One slide's patches on its grid, and (for training) its superpatches and their adjacency."""

    rows: torch.Tensor  # (patches,) long
    cols: torch.Tensor
    shape: tuple[int, int]
    superpatch: torch.Tensor | None = None  # (patches,) long, 0..S-1
    edges: torch.Tensor | None = None  # (E, 2) long, adjacent superpatch pairs (a < b)
    n_superpatches: int = 0


def slide_grids(coords: np.ndarray, offsets: np.ndarray) -> list[SlideGrid]:
    """Grid cell = coordinate - the slide's minimum coordinate (coordinates already in patch units)."""
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != offsets[-1]:
        raise ValueError(
            f"coords must be (patches, 2) grid positions, one row per patch ({offsets[-1]}), got shape {coords.shape}"
        )
    if not np.issubdtype(coords.dtype, np.integer):
        raise ValueError("coords must be integer grid positions (pixel coordinates divided by the patch size)")
    grids = []
    for s in range(len(offsets) - 1):
        c = coords[offsets[s] : offsets[s + 1]]
        c = c - c.min(0)
        shape = tuple(int(v) + 1 for v in c.max(0))
        flat = c[:, 0] * shape[1] + c[:, 1]
        if len(np.unique(flat)) != len(flat):
            raise ValueError(f"slide {s} has two patches at the same grid position; each patch needs its own cell")
        grids.append(SlideGrid(torch.as_tensor(c[:, 0]), torch.as_tensor(c[:, 1]), shape))
    return grids


def add_superpatches(grid: SlideGrid, x: np.ndarray, size: int, compactness: float) -> None:
    """SLIC superpatches on the slide's NIC (features min-max scaled to [0, 255] over the slide), as the
    reference's superpixel_generation, and their 4-neighbour adjacency."""
    from skimage.segmentation import slic

    h, w = grid.shape
    rows, cols = grid.rows.numpy(), grid.cols.numpy()
    lo, hi = x.min(), x.max()
    image = np.zeros((h, w, x.shape[1]))
    image[rows, cols] = (x - lo) / max(hi - lo, 1e-12) * 255.0
    mask = np.zeros((h, w), dtype=bool)
    mask[rows, cols] = True
    n_segments = max(10, len(x) // size)
    labels = slic(image, n_segments=n_segments, compactness=compactness, mask=mask, start_label=1,
                  channel_axis=-1, enforce_connectivity=True)  # fmt: skip
    _, superpatch = np.unique(labels[rows, cols], return_inverse=True)
    label_map = np.full((h, w), -1)
    label_map[rows, cols] = superpatch
    pairs = []
    for a, b in ((label_map[:, :-1], label_map[:, 1:]), (label_map[:-1, :], label_map[1:, :])):
        touch = (a >= 0) & (b >= 0) & (a != b)
        pairs.append(np.stack([np.minimum(a[touch], b[touch]), np.maximum(a[touch], b[touch])], 1))
    edges = np.unique(np.concatenate(pairs), axis=0) if pairs else np.zeros((0, 2), int)
    grid.superpatch = torch.as_tensor(superpatch, dtype=torch.long)
    grid.edges = torch.as_tensor(edges.reshape(-1, 2), dtype=torch.long)
    grid.n_superpatches = int(superpatch.max()) + 1


class SMMILeNet(nn.Module):
    def __init__(self, n_features: int, n_streams: int, form: str, cfg: SMMILeConfig):
        super().__init__()
        if cfg.conv_kernel not in (1, 3):
            raise ValueError(f"conv_kernel must be 1 or 3 (the reference's two sizes), got {cfg.conv_kernel}")
        self.softmax_classes = form == "multiclass"
        self.conv = nn.Conv2d(n_features, cfg.hidden_dim, cfg.conv_kernel, padding=cfg.conv_kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(cfg.hidden_dim)
        self.drop = Dropout(cfg.dropout)
        self.det_tanh = nn.Linear(cfg.hidden_dim, cfg.attention_dim)
        self.det_gate = nn.Linear(cfg.hidden_dim, cfg.attention_dim)
        self.det_out = nn.Linear(cfg.attention_dim, n_streams)
        self.classifier = nn.Linear(cfg.hidden_dim, n_streams)
        self.refinement = nn.ModuleList(nn.Linear(cfg.hidden_dim, n_streams + 1) for _ in range(cfg.n_refs))

    def embed(self, x: torch.Tensor, grid: SlideGrid) -> torch.Tensor:
        """h (patches, hidden): the convolution on the slide's NIC, gathered at the tissue positions."""
        rows, cols = grid.rows.to(x.device), grid.cols.to(x.device)
        nic = x.new_zeros(1, x.shape[1], *grid.shape)
        nic[0, :, rows, cols] = x.T
        out = self.drop(F.relu(self.norm(self.conv(nic))))
        return out[0, :, rows, cols].T

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Detector logits d (patches, C) and classifier probabilities cls (patches, C)."""
        gated = self.drop(torch.tanh(self.det_tanh(h))) * self.drop(torch.sigmoid(self.det_gate(h)))
        k = self.classifier(h)
        return self.det_out(gated), torch.softmax(k, 1) if self.softmax_classes else torch.sigmoid(k)


def _minmax(v: torch.Tensor, dim: int = 0) -> torch.Tensor:
    lo, hi = v.amin(dim, keepdim=True), v.amax(dim, keepdim=True)
    return (v - lo) / (hi - lo).clamp_min(1e-12)


def _bag_probability(s: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """P_c = clamp(sum over the instances of s_ic); ``s`` (..., patches, C)."""
    return s.sum(dim).clamp(EPS, 1 - EPS)


def bitempered_bce(p: torch.Tensor, target: torch.Tensor, t1: float = 0.2) -> torch.Tensor:
    """The bi-tempered logistic loss (Amid et al. 2019) of probabilities ``p`` for binary targets with
    t2 = 1 (the probabilities themselves, no tempered softmax) and temperature t1 < 1 (bounded loss), summed
    over the two outcomes of each category and averaged: the reference's ``bibce`` for multi-label copies."""

    def log_t(x: torch.Tensor) -> torch.Tensor:
        return (x.clamp_min(EPS) ** (1 - t1) - 1) / (1 - t1)

    loss = 0.0
    for q, y in ((p, target), (1 - p, 1 - target)):
        loss = loss + y * (log_t(y) - log_t(q)) - (y ** (2 - t1) - q ** (2 - t1)) / (2 - t1)
    return loss.mean()


class SMMILe(MILModel):
    """SMMILe on patch embeddings with grid coordinates (``coords``: (patches, 2) integers); binary,
    multiclass or multilabel slide labels (``form``, or ``auto`` from the likelihood and the labels)."""

    config_class = SMMILeConfig
    format = "mixmil_workflow.SMMILe/2"
    display_name = "SMMILe"

    def __init__(self, config: SMMILeConfig | None = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either a config object or keyword hyperparameters, not both")
        self.config = SMMILeConfig(**kwargs) if config is None else config
        cfg = self.config
        if cfg.form not in ("auto", *FORMS):
            raise ValueError(f"SMMILe form must be auto or one of {', '.join(FORMS)}, got {cfg.form!r}")
        if cfg.bag_loss not in ("bce", "bibce"):
            raise ValueError(f"SMMILe bag_loss must be 'bce' or 'bibce', got {cfg.bag_loss!r}")
        if not 0 <= cfg.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in [0, 1), got {cfg.validation_fraction}")
        binary_labels = cfg.likelihood == "bernoulli" or (cfg.likelihood == "binomial" and cfg.n_trials == 1)
        if not (binary_labels or cfg.likelihood == "categorical"):
            raise ValueError(
                "SMMILe fits binary or multi-label slide labels (likelihood 'bernoulli') or one category per slide "
                f"(likelihood 'categorical'); got likelihood {cfg.likelihood!r}"
                + (f" with n_trials {cfg.n_trials}" if cfg.likelihood == "binomial" else "")
            )
        expected = {"categorical": ("multiclass",)}.get(cfg.likelihood, ("binary", "multilabel"))
        if cfg.form != "auto" and cfg.form not in expected:
            raise ValueError(
                f"SMMILe form {cfg.form!r} does not fit likelihood {cfg.likelihood!r} labels (that takes form "
                f"{' or '.join(expected)}); set form: auto or the matching form"
            )
        self.form: str | None = None if cfg.form == "auto" else cfg.form
        self.n_streams: int | None = None
        self.net: SMMILeNet | None = None
        self.n_features: int | None = None
        self.refined = False
        self.covariate_coef: np.ndarray | None = None
        self.history: np.ndarray = np.zeros(0)
        self.validation_history: np.ndarray = np.zeros(0)
        self.epoch_seconds: np.ndarray = np.zeros(0)

    def _device(self) -> torch.device:
        return torch.device(resolve_device(self.config.device))

    @staticmethod
    def _require_coords(coords, bags: Bags) -> list[SlideGrid]:
        if coords is None:
            raise ValueError(
                "SMMILe places patches on their slide grid: pass coords=(patches, 2) integer grid positions "
                "(for slide tiles, pixel coordinates divided by the patch size)"
            )
        return slide_grids(coords, bags.offsets.cpu().numpy())

    def _targets(self, y) -> np.ndarray:
        """(slides, C) one-hot / multi-hot targets from the labels; fixes the form and C on first use."""
        cfg = self.config
        y = np.asarray(y, dtype=float)
        if cfg.likelihood == "categorical":
            codes = y.reshape(-1)
            n_classes = cfg.n_classes or (int(np.nanmax(codes)) + 1 if len(codes) else 0)
            if (
                np.isnan(codes).any()
                or (codes != np.round(codes)).any()
                or (codes < 0).any()
                or (codes >= n_classes).any()
            ):
                raise ValueError(
                    f"SMMILe multiclass labels must be category codes 0..{n_classes - 1}; got {np.unique(codes)}"
                )
            if n_classes < 2:
                raise ValueError("SMMILe multiclass needs at least two categories")
            form, targets = "multiclass", np.eye(n_classes)[codes.astype(int)]
        else:
            targets = y[:, None] if y.ndim == 1 else y
            if targets.ndim != 2 or np.isnan(targets).any() or not np.isin(targets, (0, 1)).all():
                raise ValueError(
                    "SMMILe fits binary slide labels (0 = normal, 1 = tumour; one column per category for "
                    f"multi-label), with no missing values; got values {np.unique(y)}"
                )
            form = "binary" if targets.shape[1] == 1 and self.form != "multilabel" else "multilabel"
            if self.form == "binary" and targets.shape[1] != 1:
                raise ValueError(f"SMMILe form 'binary' takes one label column, got {targets.shape[1]}; use multilabel")
        if self.n_streams is not None and targets.shape[1] != self.n_streams:
            raise ValueError(f"the model was fitted on {self.n_streams} categories, got labels of {targets.shape[1]}")
        self.form, self.n_streams = form, targets.shape[1]
        return targets

    # losses ---------------------------------------------------------------------------------------
    def _is_negative(self, target: torch.Tensor) -> bool:
        return self.form != "multiclass" and not bool(target.any())

    def _drop_copy(self, s, d, cls, target, gen) -> torch.Tensor | None:
        """P of one instance-dropout copy of a (sub-)bag: s, d, cls (patches, C)."""
        labelled = target > 0
        u = torch.rand(s.shape, generator=gen).to(s.device)
        drop = u <= _minmax(s.detach())  # drop probability = normalised score
        if self.form != "multilabel":
            dropped = s.masked_fill(drop & labelled, 0.0)
            return _bag_probability(dropped)
        predicted = _bag_probability(s.detach()) > 0.5
        columns = labelled & predicted
        if not columns.any():
            return None
        # multilabel: remove dropped instances from the detector's softmax of those categories
        logits = d.masked_fill(drop & columns & ~drop.all(0, keepdim=True), float("-inf"))
        return _bag_probability(cls * torch.softmax(logits, 0))

    def _bag_term(self, main: torch.Tensor, copies: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy(main, target)
        if not copies:
            return loss
        extra = torch.stack(copies)
        targets = target.expand_as(extra)
        extra_loss = (
            bitempered_bce(extra, targets)
            if self.config.bag_loss == "bibce"
            else F.binary_cross_entropy(extra, targets)
        )
        if self.form == "binary":
            return loss + extra_loss  # BCE(P0) + mean over the copies, as the binary reference
        k = 1 + len(copies)
        return (loss + extra_loss * (k - 1)) / k

    def _stage1_loss(self, d, cls, grid: SlideGrid, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg = self.config
        s = cls * torch.softmax(d, 0)
        main = _bag_probability(s)
        negative = self._is_negative(target)
        if negative and cfg.consistency:
            return F.binary_cross_entropy(main, target) + F.mse_loss(d, d.mean(0, keepdim=True).expand_as(d))
        copies = []
        if cfg.instance_dropout and not negative:
            drop = self._drop_copy(s, d, cls, target, gen)
            if drop is not None:
                copies.append(drop)
        if cfg.superpatch_groups > 0 and grid.superpatch is not None:
            idx = self._sample_superpatches(grid, gen, cfg.superpatch_groups).to(d.device)  # (G, S)
            d_g, cls_g = d[idx], cls[idx]  # (G, S, C)
            s_g = cls_g * torch.softmax(d_g, 1)
            p_g = _bag_probability(s_g)  # (G, C)
            copies.extend(p_g)
            if cfg.instance_dropout and not negative:
                for g in range(len(idx)):
                    if self.form == "binary" and not p_g[g, 0].detach() > 0.5:
                        continue
                    drop = self._drop_copy(s_g[g], d_g[g], cls_g[g], target, gen)
                    if drop is not None:
                        copies.append(drop)
        return self._bag_term(main, copies, target)

    @staticmethod
    def _sample_superpatches(grid: SlideGrid, gen: torch.Generator, groups: int) -> torch.Tensor:
        """(G, S) patch indices: one random patch of every superpatch per group."""
        sp = grid.superpatch
        key = sp.double().unsqueeze(0) + torch.rand(groups, len(sp), generator=gen, dtype=torch.double)
        order = torch.argsort(key, -1)
        counts = torch.bincount(sp, minlength=grid.n_superpatches)
        return order[:, torch.cumsum(counts, 0) - counts]  # the first (random) patch of each superpatch

    def _pseudo_labels(
        self, scores: torch.Tensor, target: torch.Tensor, first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, labels) of a slide's pseudo-labelled patches for one refinement layer; labels are
        category indices, C = background.

        ``scores``: layer 0, the min-max-normalised MIL scores s (patches, C); later layers, the previous
        layer's probabilities (patches, C + 1). Per labelled category c: the top ``instance_rate`` share by
        its score with score > 0.5 -> c (layer 0: at least one patch). Background: layer 0, the bottom
        share by the mean score over categories with mean < 0.5; later layers, the top share by the
        background probability with probability > 0.5. Negative slide: the top share by (layer 0) the largest
        score over categories, (later) one minus the background probability -> background (hard negatives)."""
        n, n_streams = len(scores), len(target)
        count = int(self.config.instance_rate * n)
        count = max(1, count) if first else count
        empty = scores.new_zeros(0, dtype=torch.long)
        if count == 0:
            return empty, empty
        count = min(count, n)
        foreground = scores.mean(1) if first else 1 - scores[:, n_streams]
        if self._is_negative(target):
            hardest = scores.amax(1) if first else foreground  # like any category most
            top = torch.topk(hardest, count).indices
            return top, torch.full_like(top, n_streams)
        picked, labels = [], []
        for c in torch.nonzero(target > 0).flatten().tolist():
            top = torch.topk(scores[:, c], count).indices
            top = top[scores[top, c] > 0.5]
            picked.append(top)
            labels.append(torch.full_like(top, c))
        background = 1 - foreground
        top = torch.topk(background, count).indices
        top = top[background[top] > 0.5]
        picked.append(top)
        labels.append(torch.full_like(top, n_streams))
        return torch.cat(picked), torch.cat(labels)

    def _mrf_energy(self, q: torch.Tensor, grid: SlideGrid, gen: torch.Generator) -> torch.Tensor:
        """0.8 unary (patch vs its superpatch mean) + 0.2 pairwise (adjacent superpatch means), each term
        kept when u > its min-max-normalised size (the reference's random deletion)."""
        sp = grid.superpatch.to(q.device)
        counts = torch.bincount(sp, minlength=grid.n_superpatches).clamp_min(1).unsqueeze(1).to(q.dtype)
        means = q.new_zeros(grid.n_superpatches, q.shape[1]).index_add_(0, sp, q) / counts

        def masked_mean(terms: torch.Tensor) -> torch.Tensor:
            if terms.numel() == 0:
                return terms.sum()
            keep = torch.rand(len(terms), generator=gen).to(q.device) > _minmax(terms.detach(), 0)
            return (terms * keep).sum() / keep.sum().clamp_min(1)

        unary = masked_mean(((q - means[sp]) ** 2).mean(1))
        edges = grid.edges.to(q.device)
        pairwise = masked_mean(((means[edges[:, 0]] - means[edges[:, 1]]) ** 2).mean(1))
        return 0.8 * unary + 0.2 * pairwise

    def _stage2_loss(self, h, d, cls, grid, target, gen) -> torch.Tensor:
        cfg = self.config
        loss = h.new_zeros(())
        previous = _minmax((cls * torch.softmax(d, 0)).detach())
        for r, layer in enumerate(self.net.refinement):
            logits = layer(h)
            q = torch.softmax(logits, 1)
            idx, labels = self._pseudo_labels(previous, target, first=r == 0)
            if len(idx):
                loss = loss + F.cross_entropy(logits[idx], labels)
            if cfg.mrf_weight > 0 and grid.superpatch is not None:
                loss = loss + cfg.mrf_weight * self._mrf_energy(q, grid, gen) / cfg.n_refs
            previous = q.detach()
        return loss

    # training -------------------------------------------------------------------------------------
    def _validation_split(self, targets: np.ndarray) -> np.ndarray:
        """Boolean mask of the held-out slides: ``validation_fraction`` of each label pattern, seeded."""
        held = np.zeros(len(targets), dtype=bool)
        if self.config.validation_fraction == 0:
            return held
        rng = np.random.default_rng(self.config.seed)
        _, pattern = np.unique(targets, axis=0, return_inverse=True)
        for k in np.unique(pattern):
            members = rng.permutation(np.flatnonzero(pattern == k))
            take = int(round(self.config.validation_fraction * len(members)))
            held[members[: min(take, len(members) - 1)]] = True  # every pattern keeps a training slide
        if held.all() or not held.any():
            raise ValueError(
                f"validation_fraction {self.config.validation_fraction} leaves no training or no validation "
                f"slides among {len(targets)}; lower it, or set it to 0 for fixed epochs"
            )
        return held

    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None, *, coords=None) -> SMMILe:
        cfg = self.config
        grids = self._require_coords(coords, bags)
        targets = self._targets(y)
        if len(targets) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} slides but {len(targets)} labels")
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        device = self._device()
        bags, self.covariate_coef = regress_out_covariates(bags, covariates)
        x_all = bags.x.float()
        offsets = bags.offsets.cpu().numpy()
        if cfg.superpatch_groups > 0 or (cfg.mrf_weight > 0 and cfg.n_epochs_stage2 > 0):
            for s, grid in enumerate(grids):
                add_superpatches(grid, x_all[offsets[s] : offsets[s + 1]].cpu().numpy(), cfg.superpatch_size,
                                 cfg.slic_compactness)  # fmt: skip
        self.n_features = bags.n_features
        self.net = SMMILeNet(bags.n_features, self.n_streams, self.form, cfg).to(device)
        x_all = x_all.to(device)
        target_t = torch.as_tensor(targets, dtype=torch.float32, device=device)
        held = self._validation_split(targets)
        train, valid = np.flatnonzero(~held), np.flatnonzero(held)
        # class-balanced sampling: each label pattern drawn equally often
        _, pattern = np.unique(targets[train], axis=0, return_inverse=True)
        weights = 1.0 / np.bincount(pattern)[pattern]
        history, val_history, seconds = [], [], []

        def slide_forward(s: int):
            h = self.net.embed(x_all[offsets[s] : offsets[s + 1]], grids[s])
            return (h, *self.net.heads(h))

        def validation_loss() -> float:
            self.net.eval()
            with torch.no_grad():
                losses = [F.binary_cross_entropy(_bag_probability(cls * torch.softmax(d, 0)), target_t[s]).item()
                          for s in valid for _, d, cls in [slide_forward(s)]]  # fmt: skip
            return float(np.mean(losses))

        stages = ((1, cfg.n_epochs_stage1, cfg.patience_stage1, cfg.stop_epoch_stage1),
                  (2, cfg.n_epochs_stage2, cfg.patience_stage2, cfg.stop_epoch_stage2))  # fmt: skip
        for stage, n_epochs, patience, stop_epoch in stages:
            if n_epochs == 0:
                continue
            optimiser = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, "min", factor=0.5, patience=cfg.lr_patience)
            best = {"loss": np.inf, "epoch": -1, "state": None}
            stage_val: list[float] = []

            def run_epoch(epoch: int, stage: int = stage, optimiser=optimiser) -> float:
                self.net.train()
                if cfg.weighted_sample:
                    draw = torch.multinomial(torch.as_tensor(weights), len(train), replacement=True, generator=gen)
                else:
                    draw = torch.randperm(len(train), generator=gen)
                running = 0.0
                for s in train[draw.numpy()].tolist():  # one slide per step, as the reference
                    h, d, cls = slide_forward(s)
                    loss = self._stage1_loss(d, cls, grids[s], target_t[s], gen)
                    if stage == 2:
                        loss = loss + self._stage2_loss(h, d, cls, grids[s], target_t[s], gen)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    running += loss.item()
                return running / len(train)

            def early_stop(epoch: int, loss: float, plateau=plateau, best=best, stage_val=stage_val,
                           patience=patience, stop_epoch=stop_epoch) -> bool:  # fmt: skip
                if len(valid) == 0:
                    return False
                value = validation_loss()
                stage_val.append(value)
                plateau.step(value)
                if value < best["loss"]:
                    best.update(loss=value, epoch=epoch, state=copy.deepcopy(self.net.state_dict()))
                return epoch - best["epoch"] >= patience and epoch + 1 >= stop_epoch

            record = train_epochs(run_epoch, n_epochs, name=f"SMMILe stage {stage}", progress=cfg.progress,
                                  early_stopping=early_stop)  # fmt: skip
            if best["state"] is not None:  # the best validation epoch's weights, as the reference's checkpoint
                self.net.load_state_dict(best["state"])
            history.append(record.loss)
            val_history.append(np.asarray(stage_val, dtype=float))
            seconds.append(record.epoch_seconds)
            self.refined = stage == 2
        self.history = np.concatenate(history) if history else np.zeros(0)
        self.validation_history = np.concatenate(val_history) if val_history else np.zeros(0)
        self.epoch_seconds = np.concatenate(seconds) if seconds else np.zeros(0)
        self.net.eval()
        return self

    # prediction -----------------------------------------------------------------------------------
    def _slides(self, bags: Bags, covariates, coords):
        if self.net is None:
            raise RuntimeError("model is not fitted; call fit() or load() first")
        grids = self._require_coords(coords, bags)
        bags, _ = regress_out_covariates(bags, covariates, self.covariate_coef, fitting=False)
        if bags.n_features != self.n_features:
            raise ValueError(f"the model was fitted on {self.n_features} features, got {bags.n_features}")
        x_all = bags.x.float().to(self._device())
        offsets = bags.offsets.cpu().numpy()
        self.net.eval()
        with torch.no_grad():
            for s, grid in enumerate(grids):
                x = x_all[offsets[s] : offsets[s + 1]]
                h = self.net.embed(x, grid)
                yield x, grid, h, *self.net.heads(h)

    def predict(self, bags: Bags, covariates: np.ndarray | None = None, *, coords=None) -> Prediction:
        """Slide probabilities (``mean``, (slides, C)) and their logits: binary and multilabel P_c and
        logit(P_c); multiclass P normalised over the categories and log P."""
        p = np.stack([_bag_probability(cls * torch.softmax(d, 0)).cpu().numpy()
                      for *_, d, cls in self._slides(bags, covariates, coords)])  # fmt: skip
        if self.form == "multiclass":
            eta = np.log(p)
            return Prediction(eta, eta, p / p.sum(1, keepdims=True))
        logit = np.log(p) - np.log1p(-p)
        return Prediction(logit, logit, p)

    def _smoothed(self, x, grid: SlideGrid, d, cls) -> torch.Tensor:
        """sp_smooth: each patch's score is the mean over G sampled sub-bags of its superpatch's sampled
        patch's score (the detector's softmax over the sub-bag)."""
        cfg = self.config
        grid = SlideGrid(grid.rows, grid.cols, grid.shape)
        add_superpatches(grid, x.cpu().numpy(), cfg.superpatch_size, cfg.slic_compactness)
        gen = torch.Generator().manual_seed(cfg.seed)
        idx = self._sample_superpatches(grid, gen, max(1, cfg.superpatch_groups)).to(d.device)
        s_g = (cls[idx] * torch.softmax(d[idx], 1)).mean(0)  # (S, C): the superpatch's mean sampled score
        return s_g[grid.superpatch.to(d.device)]

    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None, *, coords=None) -> np.ndarray:
        """(patches, C): after stage 2 the last refinement layer's category probabilities, else the
        min-max-normalised s (``sp_smooth``: superpatch-smoothed first)."""
        out = []
        for x, grid, h, d, cls in self._slides(bags, covariates, coords):
            if self.refined:
                out.append(torch.softmax(self.net.refinement[-1](h), 1)[:, : self.n_streams])
            elif self.config.sp_smooth:
                out.append(_minmax(self._smoothed(x, grid, d, cls)))
            else:
                out.append(_minmax(cls * torch.softmax(d, 0)))
        return torch.cat(out).cpu().numpy()

    # persistence ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        if self.net is None:
            raise RuntimeError("model is not fitted; nothing to save")
        save_model(
            path, self.format, self.config, n_features=self.n_features, refined=self.refined, form=self.form,
            n_streams=self.n_streams, covariate_coef=self.covariate_coef, state_dict=state_dict_cpu(self.net),
            history=self.history,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> SMMILe:
        payload = load_model(path, cls.format, "SMMILe")
        model = cls(SMMILeConfig(**payload["config"]))
        model.n_features, model.refined = payload["n_features"], payload["refined"]
        model.form, model.n_streams = payload["form"], payload["n_streams"]
        model.net = SMMILeNet(model.n_features, model.n_streams, model.form, model.config)
        model.net.load_state_dict(payload["state_dict"])
        model.net = model.net.to(model._device()).eval()
        model.covariate_coef = as_array(payload["covariate_coef"])
        model.history = as_array(payload.get("history"))
        return model
