"""SMMILe (Gao et al. 2024), binary single-label form (the reference's ``SMMILe_SINGLE``), written from
the paper and ``shared/reference/models.md`` section 6.

A slide's patch embeddings are placed on their 2-D grid (NIC) and passed through a convolution (3 x 3
mixes each patch with its 8 neighbours; 1 x 1 is the reference's "big" CAMELYON setting), BatchNorm,
ReLU and dropout. From the tissue positions' features h_i: a gated attention detector d_i
(det = softmax_i d_i) and an instance classifier cls_i = sigmoid(k_i); instance score s_i = cls_i det_i;
slide probability P = clamp(sum_i s_i). Stage 1 trains on BCE(P, y) plus BCE of extra copies of P:
parameter-free instance dropout (instance i kept when u_i > min-max-normalised s_i, positive slides),
delocalised sampling of one instance per SLIC superpatch (G groups, each with its own dropout copy when
its P > 0.5), and on negative slides a consistency loss MSE(d_i, mean d) instead of the copies. Stage 2
adds ``n_refs`` instance refinement layers (Linear h -> 2) trained on pseudo-labels (layer 0 from the
min-max-normalised s, later layers from the previous layer's probabilities) and the MRF energy
(0.8 unary within superpatches + 0.2 pairwise between adjacent superpatches, with random deletion of
terms in proportion to their size). Instance scores: stage 1, min-max-normalised s; stage 2, the last
refinement layer's tumour probability.

Deviations from the reference, for a fixed-budget workflow: fixed epochs per stage (no early stopping
or ReduceLROnPlateau, which need a validation split per fold); a class-balanced sampler of slides with
replacement as ``weighted_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.io import resolve_device
from mixmil_workflow.models.base import MILModel, Prediction, regress_out_covariates
from mixmil_workflow.models.options import SMMILeConfig
from mixmil_workflow.models.persistence import as_array, load_model, save_model, state_dict_cpu
from mixmil_workflow.models.training import train_epochs

EPS = 1e-10


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
    def __init__(self, n_features: int, cfg: SMMILeConfig):
        super().__init__()
        if cfg.conv_kernel not in (1, 3):
            raise ValueError(f"conv_kernel must be 1 or 3 (the reference's two sizes), got {cfg.conv_kernel}")
        self.conv = nn.Conv2d(n_features, cfg.hidden_dim, cfg.conv_kernel, padding=cfg.conv_kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(cfg.hidden_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.det_tanh = nn.Linear(cfg.hidden_dim, cfg.attention_dim)
        self.det_gate = nn.Linear(cfg.hidden_dim, cfg.attention_dim)
        self.det_out = nn.Linear(cfg.attention_dim, 1)
        self.classifier = nn.Linear(cfg.hidden_dim, 1)
        self.refinement = nn.ModuleList(nn.Linear(cfg.hidden_dim, 2) for _ in range(cfg.n_refs))

    def embed(self, x: torch.Tensor, grid: SlideGrid) -> torch.Tensor:
        """h (patches, hidden): the convolution on the slide's NIC, gathered at the tissue positions."""
        rows, cols = grid.rows.to(x.device), grid.cols.to(x.device)
        nic = x.new_zeros(1, x.shape[1], *grid.shape)
        nic[0, :, rows, cols] = x.T
        out = self.drop(F.relu(self.norm(self.conv(nic))))
        return out[0, :, rows, cols].T

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Detector logits d (patches,) and classifier probabilities cls (patches,)."""
        gated = self.drop(torch.tanh(self.det_tanh(h))) * self.drop(torch.sigmoid(self.det_gate(h)))
        return self.det_out(gated)[:, 0], torch.sigmoid(self.classifier(h)[:, 0])


def _minmax(v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    lo, hi = v.amin(dim, keepdim=True), v.amax(dim, keepdim=True)
    return (v - lo) / (hi - lo).clamp_min(1e-12)


def _bag_probability(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return s.sum(dim).clamp(EPS, 1 - EPS)


class SMMILe(MILModel):
    """Binary SMMILe on patch embeddings with grid coordinates (``coords``: (patches, 2) integers)."""

    config_class = SMMILeConfig
    format = "mixmil_workflow.SMMILe/1"
    display_name = "SMMILe"

    def __init__(self, config: SMMILeConfig | None = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either a config object or keyword hyperparameters, not both")
        self.config = SMMILeConfig(**kwargs) if config is None else config
        binary = self.config.likelihood == "bernoulli" or (
            self.config.likelihood == "binomial" and self.config.n_trials == 1
        )
        if not binary:
            raise ValueError(
                f"SMMILe fits binary slide labels (likelihood 'bernoulli'); got likelihood {self.config.likelihood!r}"
                + (f" with n_trials {self.config.n_trials}" if self.config.likelihood == "binomial" else "")
            )
        self.net: SMMILeNet | None = None
        self.n_features: int | None = None
        self.refined = False
        self.covariate_coef: np.ndarray | None = None
        self.history: np.ndarray = np.zeros(0)
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

    # losses ---------------------------------------------------------------------------------------
    def _stage1_loss(self, d, cls, grid: SlideGrid, y: float, gen: torch.Generator) -> torch.Tensor:
        cfg = self.config
        s = cls * torch.softmax(d, 0)
        target = d.new_tensor(y)
        main = F.binary_cross_entropy(_bag_probability(s), target)
        if y == 0 and cfg.consistency:
            return main + F.mse_loss(d, d.mean().expand_as(d))
        copies = []
        if y == 1 and cfg.instance_dropout:
            keep = torch.rand(len(s), generator=gen).to(s.device) > _minmax(s.detach())
            copies.append(_bag_probability(s * keep).view(1))
        if cfg.superpatch_groups > 0 and grid.superpatch is not None:
            idx = self._sample_superpatches(grid, gen, cfg.superpatch_groups).to(d.device)  # (G, S)
            s_g = cls[idx] * torch.softmax(d[idx], -1)
            p_g = _bag_probability(s_g)
            copies.append(p_g)
            if y == 1 and cfg.instance_dropout:
                confident = p_g.detach() > 0.5
                if confident.any():
                    sub = s_g[confident]
                    keep = torch.rand(sub.shape, generator=gen).to(s.device) > _minmax(sub.detach())
                    copies.append(_bag_probability(sub * keep))
        if not copies:
            return main
        extra = torch.cat(copies)
        return main + F.binary_cross_entropy(extra, target.expand_as(extra))

    @staticmethod
    def _sample_superpatches(grid: SlideGrid, gen: torch.Generator, groups: int) -> torch.Tensor:
        """(G, S) patch indices: one random patch of every superpatch per group."""
        sp = grid.superpatch
        key = sp.double().unsqueeze(0) + torch.rand(groups, len(sp), generator=gen, dtype=torch.double)
        order = torch.argsort(key, -1)
        counts = torch.bincount(sp, minlength=grid.n_superpatches)
        return order[:, torch.cumsum(counts, 0) - counts]  # the first (random) patch of each superpatch

    def _pseudo_labels(self, scores: torch.Tensor, y: float, first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, labels) of a slide's pseudo-labelled patches for one refinement layer.

        ``scores``: layer 0, the min-max-normalised MIL score s (patches,); later layers, the previous
        layer's probabilities (patches, 2). Positive slide: the top ``instance_rate`` share by tumour
        score with score > 0.5 -> 1, the top share by normal score (layer 0: the bottom by s) with normal
        score > 0.5 -> 0. Negative slide: the top share by tumour score -> 0 (hard negatives)."""
        n = len(scores)
        count = int(self.config.instance_rate * n)
        count = max(1, count) if first else count
        if count == 0:
            return scores.new_zeros(0, dtype=torch.long), scores.new_zeros(0, dtype=torch.long)
        tumour = scores if first else scores[:, 1]
        normal = 1 - scores if first else scores[:, 0]
        top_tumour = torch.topk(tumour, min(count, n)).indices
        if y == 0:
            return top_tumour, torch.zeros_like(top_tumour)
        top_normal = torch.topk(normal, min(count, n)).indices
        pos = top_tumour[tumour[top_tumour] > 0.5]
        neg = top_normal[normal[top_normal] > 0.5]
        return torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])

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

    def _stage2_loss(self, h, d, cls, grid, y, gen) -> torch.Tensor:
        cfg = self.config
        loss = h.new_zeros(())
        previous = _minmax((cls * torch.softmax(d, 0)).detach())
        for r, layer in enumerate(self.net.refinement):
            logits = layer(h)
            q = torch.softmax(logits, 1)
            idx, labels = self._pseudo_labels(previous, y, first=r == 0)
            if len(idx):
                loss = loss + F.cross_entropy(logits[idx], labels)
            if cfg.mrf_weight > 0 and grid.superpatch is not None:
                loss = loss + cfg.mrf_weight * self._mrf_energy(q, grid, gen) / cfg.n_refs
            previous = q.detach()
        return loss

    # training -------------------------------------------------------------------------------------
    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None, *, coords=None) -> SMMILe:
        cfg = self.config
        grids = self._require_coords(coords, bags)
        y = np.asarray(y, dtype=float).reshape(-1)
        if len(y) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} slides but {len(y)} labels")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"SMMILe fits binary slide labels (0 = normal, 1 = tumour); got values {np.unique(y)}")
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        device = self._device()
        bags, self.covariate_coef = regress_out_covariates(bags, covariates)
        x_all = bags.x.float()
        offsets = bags.offsets.cpu().numpy()
        if cfg.superpatch_groups > 0 or (cfg.mrf_weight > 0 and cfg.n_epochs_stage2 > 0):
            for s, grid in enumerate(grids):
                x_np = x_all[offsets[s] : offsets[s + 1]].cpu().numpy()
                add_superpatches(grid, x_np, cfg.superpatch_size, cfg.slic_compactness)
        self.n_features = bags.n_features
        self.net = SMMILeNet(bags.n_features, cfg).to(device)
        x_all = x_all.to(device)
        weights = np.where(y == 1, 1 / max(1, (y == 1).sum()), 1 / max(1, (y == 0).sum()))
        history, seconds = [], []
        for stage, n_epochs in ((1, cfg.n_epochs_stage1), (2, cfg.n_epochs_stage2)):
            if n_epochs == 0:
                continue
            optimiser = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

            def run_epoch(epoch: int, stage: int = stage, optimiser=optimiser) -> float:
                self.net.train()
                if cfg.weighted_sample:
                    order = torch.multinomial(torch.as_tensor(weights), len(y), replacement=True, generator=gen)
                else:
                    order = torch.randperm(len(y), generator=gen)
                running = 0.0
                for s in order.tolist():  # one slide per step, as the reference
                    x = x_all[offsets[s] : offsets[s + 1]]
                    h = self.net.embed(x, grids[s])
                    d, cls = self.net.heads(h)
                    loss = self._stage1_loss(d, cls, grids[s], y[s], gen)
                    if stage == 2:
                        loss = loss + self._stage2_loss(h, d, cls, grids[s], y[s], gen)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    running += loss.item()
                return running / len(order)

            record = train_epochs(run_epoch, n_epochs, name=f"SMMILe stage {stage}", progress=cfg.progress)
            history.append(record.loss)
            seconds.append(record.epoch_seconds)
            self.refined = stage == 2
        self.history = np.concatenate(history) if history else np.zeros(0)
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
                h = self.net.embed(x_all[offsets[s] : offsets[s + 1]], grid)
                yield h, *self.net.heads(h)

    def predict(self, bags: Bags, covariates: np.ndarray | None = None, *, coords=None) -> Prediction:
        """Slide probabilities P (``mean``) and their logits (``bag_effect``, ``linear_predictor``), (slides, 1)."""
        p = np.array(
            [_bag_probability(cls * torch.softmax(d, 0)).item() for _, d, cls in self._slides(bags, covariates, coords)]
        )
        logit = np.log(p) - np.log1p(-p)
        return Prediction(logit[:, None], logit[:, None], p[:, None])

    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None, *, coords=None) -> np.ndarray:
        """(patches, 1): after stage 2 the last refinement layer's tumour probability, else min-max-normalised s."""
        out = []
        for h, d, cls in self._slides(bags, covariates, coords):
            if self.refined:
                out.append(torch.softmax(self.net.refinement[-1](h), 1)[:, 1])
            else:
                out.append(_minmax(cls * torch.softmax(d, 0)))
        return torch.cat(out).cpu().numpy()[:, None]

    # persistence ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        if self.net is None:
            raise RuntimeError("model is not fitted; nothing to save")
        save_model(
            path, self.format, self.config, n_features=self.n_features, refined=self.refined,
            covariate_coef=self.covariate_coef, state_dict=state_dict_cpu(self.net), history=self.history,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> SMMILe:
        payload = load_model(path, cls.format, "SMMILe")
        model = cls(SMMILeConfig(**payload["config"]))
        model.n_features, model.refined = payload["n_features"], payload["refined"]
        model.net = SMMILeNet(model.n_features, model.config)
        model.net.load_state_dict(payload["state_dict"])
        model.net = model.net.to(model._device()).eval()
        model.covariate_coef = as_array(payload["covariate_coef"])
        model.history = as_array(payload.get("history"))
        return model
