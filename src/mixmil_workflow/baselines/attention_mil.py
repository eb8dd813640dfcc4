"""ABMIL and Gated ABMIL (Ilse, Tomczak, Welling, ICML 2018) on precomputed instance embeddings.

Per network: h_i = ReLU(W_e x_i + b_e) (instance encoder, width "Dim. Encoder" of the paper's
Table C.2), attention e_i = w^T tanh(V h_i + b_V) [gated: ⊙ sigmoid(U h_i + b_U)] + b_w, a = softmax of
e over the bag's instances, bag embedding z = sum_i a_i h_i, logits = W_c z + b_c.

P independent traits are P independent networks whose parameters are stacked along a leading axis and
trained in one loop: Adam and weight decay act elementwise, so this equals P separate runs (the
analogue of MixMIL's per-output priors) at the cost of one. Binomial(n) labels are fitted with BCE on
y / n (the Binomial log-likelihood up to a constant); categorical labels with C logits and softmax
cross-entropy (one network); Gaussian labels with squared error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..bags import Bags, minibatches
from ..io import atomic_path, resolve_device
from ..likelihoods import Binomial, Categorical, Gaussian, make_likelihood
from ..mixmil import Prediction
from ..segment import segment_softmax, segment_sum
from .base import MILModel, regress_out_covariates

FORMAT = "mixmil_workflow.AttentionMIL/1"


@dataclass
class AttentionMILConfig:
    likelihood: str = "binomial"
    n_trials: int | None = 2
    n_classes: int | None = None
    gated: bool = False
    hidden_dim: int = 30  # instance encoder width (Table C.2: "Dim. Encoder" 30)
    attention_dim: int = 128  # L in Ilse et al.
    lr: float = 5e-4  # Table C.2
    weight_decay: float = 1e-4  # Table C.2
    n_epochs: int = 100
    batch_size: int = 16  # bags per step (the reference uses 1; minibatches make CPU training practical)
    seed: int = 0
    device: str = "auto"
    progress: bool = True


class StackedAttentionNet(nn.Module):
    """``n_nets`` independent (gated) attention-MIL networks evaluated together."""

    def __init__(
        self, n_nets: int, n_features: int, hidden: int, attention: int, n_logits: int, gated: bool, seed: int
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)

        def linear(fan_in: int, *shape: int) -> nn.Parameter:
            # nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), per network.
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(n_nets, *shape).uniform_(-bound, bound, generator=gen))

        self.gated = gated
        self.enc_w, self.enc_b = linear(n_features, n_features, hidden), linear(n_features, hidden)
        self.att_v, self.att_vb = linear(hidden, hidden, attention), linear(hidden, attention)
        if gated:
            self.att_u, self.att_ub = linear(hidden, hidden, attention), linear(hidden, attention)
        self.att_w, self.att_wb = linear(attention, attention), linear(attention)
        self.cls_w, self.cls_b = linear(hidden, hidden, n_logits), linear(hidden, n_logits)

    def forward(self, bags: Bags) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (bags, nets, logits) and attention weights (instances, nets)."""
        h = F.relu(torch.einsum("iq,nqm->inm", bags.x, self.enc_w) + self.enc_b)
        v = torch.tanh(torch.einsum("inm,nml->inl", h, self.att_v) + self.att_vb)
        if self.gated:
            v = v * torch.sigmoid(torch.einsum("inm,nml->inl", h, self.att_u) + self.att_ub)
        scores = torch.einsum("inl,nl->in", v, self.att_w) + self.att_wb
        weights = segment_softmax(scores, bags.offsets, bags.index)
        pooled = segment_sum(weights.unsqueeze(-1) * h, bags.offsets, bags.index)  # (B, nets, hidden)
        return torch.einsum("bnm,nmc->bnc", pooled, self.cls_w) + self.cls_b, weights


class AttentionMIL(MILModel):
    """ABMIL (``gated=False``) and Gated ABMIL (``gated=True``)."""

    def __init__(self, config: AttentionMILConfig | None = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either an AttentionMILConfig or keyword hyperparameters, not both")
        self.config = AttentionMILConfig(**kwargs) if config is None else config
        self.net: StackedAttentionNet | None = None
        self.likelihood = make_likelihood(self.config.likelihood, self.config.n_trials, self.config.n_classes)
        self.covariate_coef: np.ndarray | None = None
        self.history: np.ndarray = np.zeros(0)

    def _device(self) -> torch.device:
        return torch.device(resolve_device(self.config.device))

    def _shape(self, n_outputs: int) -> tuple[int, int]:
        """(networks, logits per network)."""
        if isinstance(self.likelihood, Categorical):
            return 1, n_outputs
        return n_outputs, 1

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(self.likelihood, Categorical):
            return F.cross_entropy(logits[:, 0], y)
        if isinstance(self.likelihood, Binomial):
            target = y / self.likelihood.n_trials
            return F.binary_cross_entropy_with_logits(logits[..., 0], target, reduction="none").mean(0).sum()
        return F.mse_loss(logits[..., 0], y, reduction="none").mean(0).sum()

    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> AttentionMIL:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        device = self._device()
        y_t = self.likelihood.prepare_labels(y)
        if len(y_t) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} bags but {len(y_t)} labels")
        n_nets, n_logits = self._shape(self.likelihood.n_outputs(y_t))
        bags, self.covariate_coef = regress_out_covariates(bags, covariates)
        bags = bags.to(device)
        y_t = (y_t if isinstance(self.likelihood, Categorical) else y_t.float()).to(device)
        self.net = StackedAttentionNet(
            n_nets, bags.n_features, cfg.hidden_dim, cfg.attention_dim, n_logits, cfg.gated, cfg.seed
        ).to(device)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        history = np.zeros(cfg.n_epochs)
        name = "Gated ABMIL" if cfg.gated else "ABMIL"
        for epoch in tqdm(range(cfg.n_epochs), desc=name, disable=not cfg.progress, mininterval=5.0, unit="epoch"):
            total = 0.0
            for idx in minibatches(torch.randperm(bags.n_bags, generator=shuffle), cfg.batch_size):
                logits, _ = self.net(bags.subset(idx))
                loss = self._loss(logits, y_t[idx.to(device)])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            history[epoch] = total / bags.n_bags
        self.history = history
        return self

    def _forward(self, bags: Bags, covariates: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.net is None:
            raise RuntimeError("model is not fitted; call fit() or load() first")
        bags, _ = regress_out_covariates(bags, covariates, self.covariate_coef)
        with torch.no_grad():
            return self.net(bags.to(self._device()))

    def predict(self, bags: Bags, covariates: np.ndarray | None = None) -> Prediction:
        logits, _ = self._forward(bags, covariates)
        if isinstance(self.likelihood, Categorical):
            eta = logits[:, 0]  # (B, C)
            mean = torch.softmax(eta, -1)
        else:
            eta = logits[..., 0]  # (B, P)
            mean = eta if isinstance(self.likelihood, Gaussian) else self.likelihood.mean(eta)
        eta = eta.cpu().numpy()
        return Prediction(eta, eta, mean.cpu().numpy())

    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None) -> np.ndarray:
        """Attention weights a_i (sum to 1 within each bag), shape (instances, P) (P = 1 if categorical)."""
        return self._forward(bags, covariates)[1].cpu().numpy()

    def save(self, path: str | Path) -> None:
        if self.net is None:
            raise RuntimeError("model is not fitted; nothing to save")
        n_nets, n_logits = self.net.cls_b.shape
        payload = {
            "format": FORMAT,
            "config": asdict(self.config),
            "shape": [n_nets, self.net.enc_w.shape[1], n_logits],
            "n_classes": self.likelihood.n_classes if isinstance(self.likelihood, Categorical) else None,
            "covariate_coef": torch.as_tensor(self.covariate_coef),
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> AttentionMIL:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a saved attention-MIL model (format {payload.get('format')!r})")
        config = AttentionMILConfig(**payload["config"])
        if payload["n_classes"] is not None:
            config.n_classes = payload["n_classes"]
        model = cls(config)
        n_nets, n_features, n_logits = payload["shape"]
        net = StackedAttentionNet(
            n_nets, n_features, config.hidden_dim, config.attention_dim, n_logits, config.gated, config.seed
        )
        net.load_state_dict(payload["state_dict"])
        model.net = net.to(model._device())
        model.covariate_coef = payload["covariate_coef"].numpy()
        return model
