"""Shared machinery of the neural MIL baselines: stacked per-output networks, training, persistence.

P independent traits are fitted by P independent networks whose parameters are stacked along a leading
axis and trained in one loop. Adam and weight decay act elementwise and the loss is a sum over the
networks, so this equals P separate runs (the analogue of MixMIL's per-output priors) at the cost of
one. Categorical labels use one network with C logits.

A subclass provides ``build_net`` (a module mapping bags to :class:`NetOutput`) and may override the
loss (``loss`` / ``bag_loss``), the optimiser (``make_optimiser`` / ``make_scheduler``), the
prediction-time pass (``run_net``, e.g. Monte Carlo averaging) and the Table 1 parameter split
(``parameter_groups``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.io import resolve_device
from mixmil_workflow.models.base import MILModel, Prediction, regress_out_covariates
from mixmil_workflow.models.likelihoods import Binomial, Categorical, make_likelihood
from mixmil_workflow.models.options import NeuralMILConfig
from mixmil_workflow.models.persistence import as_array, load_model, save_model, state_dict_cpu
from mixmil_workflow.models.training import FusedAdam, shuffled_minibatches, train_epochs

LOSSES = ("likelihood", "huber")


class NetOutput(NamedTuple):
    logits: torch.Tensor  # (bags, nets, logits)
    instance_scores: torch.Tensor  # (instances, nets, logits) or (instances, nets)
    aux_logits: torch.Tensor | None = None  # a second bag-level prediction with its own loss (DSMIL)
    bag_embeddings: torch.Tensor | None = None  # (bags, nets, features) before the bag classifier


def stacked_uniform(n_nets: int, fan_in: int, *shape: int, generator: torch.Generator) -> nn.Parameter:
    """nn.Linear's default initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for each of n_nets networks."""
    bound = 1 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(n_nets, *shape).uniform_(-bound, bound, generator=generator))


def stacked_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each net's linear map: x (rows, nets, fan_in) and weight (nets, fan_in, fan_out) give
    (rows, nets, fan_out).

    A single output (a logit) is one dot product per row and net, computed as a product and a sum:
    einsum would call a batched matrix-vector kernel, measured 1.5-2x slower on a CPU (forward and
    backward); wider outputs (two already) are faster through einsum's batched matrix product.
    """
    if weight.shape[-1] == 1:
        return (x * weight[..., 0]).sum(-1, keepdim=True)
    return torch.einsum("rni,nio->rno", x, weight)


def standard_normal(like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of ``like``'s shape, dtype and device, drawn into a contiguous tensor.

    Why not ``torch.randn_like``: it keeps the strides of ``like``, and the stacked networks' outputs are
    permuted bmm results; on a CPU a non-contiguous draw takes torch's element-by-element path, measured
    8x slower than a contiguous one (Bayes-MIL spent 40 % of a step there)."""
    return torch.randn(like.shape, dtype=like.dtype, device=like.device)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``, with the same values and the same draws from torch's generator.

    Why not ``F.dropout`` on a CPU: its mask comes from ``bernoulli_``, which compares one double-precision
    uniform per element with 1 - p, element by element; ``uniform_`` on doubles draws the same numbers
    from the same generator through a faster loop (measured 2.1 ms -> 1.2 ms for a Bayes-MIL layer of
    240,000 activations). The scaling (mask / (1 - p), then the product) is F.dropout's, so the result is
    bit-identical (tests/models/test_neural_mil.py holds it to F.dropout). Other devices keep F.dropout,
    whose fused kernels draw differently."""
    if not training or p == 0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    if not 0 < p <= 1:
        raise ValueError(f"dropout probability must be between 0 and 1, got {p}")
    if p == 1:
        return x * torch.zeros((), dtype=x.dtype)  # as F.dropout: no draws, zeros that keep the graph
    # Drawn into a tensor of x's layout, as bernoulli_ fills F.dropout's (the stacked networks' activations
    # are often permuted), so that the same numbers land on the same elements.
    keep = torch.empty_like(x, dtype=torch.float64).uniform_() < 1 - p
    return x * keep.to(x.dtype).div_(1 - p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (same values, faster on a CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class NeuralMIL(MILModel):
    config_class = NeuralMILConfig
    format = ""
    display_name = ""

    def __init__(self, config: NeuralMILConfig | None = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either a config object or keyword hyperparameters, not both")
        self.config = self.config_class(**kwargs) if config is None else config
        self.net: nn.Module | None = None
        self.net_shape: tuple[int, int, int] | None = None  # (nets, features, logits)
        self.likelihood = make_likelihood(self.config.likelihood, self.config.n_trials, self.config.n_classes)
        if self.config.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.config.loss!r}")
        if self.config.loss == "huber" and isinstance(self.likelihood, Categorical):
            raise ValueError("loss 'huber' regresses a numeric label; categorical labels need loss 'likelihood'")
        self.covariate_coef: np.ndarray | None = None
        self.history: np.ndarray = np.zeros(0)
        self.epoch_seconds: np.ndarray = np.zeros(0)  # wall time of each training epoch of the last fit

    # to be provided by each model ----------------------------------------------------------------
    @abstractmethod
    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module: ...

    def make_optimiser(self, params) -> torch.optim.Optimizer | FusedAdam:
        """Adam, as ``torch.optim.Adam(fused=True)`` updates it (MoMIL overrides it with torch's AdamW)."""
        return FusedAdam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def make_scheduler(self, optimiser: torch.optim.Optimizer | FusedAdam):
        return None

    def early_stopping(self):
        """The early-stopping hook of the training loop (``None``: train every epoch)."""
        return None

    def bag_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of one set of bag logits, summed over networks, mean over bags."""
        if self.config.loss == "huber":
            return F.huber_loss(logits[..., 0], y, reduction="none").mean(0).sum()
        if isinstance(self.likelihood, Categorical):
            return F.cross_entropy(logits[:, 0], y)
        if isinstance(self.likelihood, Binomial):
            # BCE on y / n is the Binomial(n) log-likelihood up to a constant.
            target = y / self.likelihood.n_trials
            return F.binary_cross_entropy_with_logits(logits[..., 0], target, reduction="none").mean(0).sum()
        return F.mse_loss(logits[..., 0], y, reduction="none").mean(0).sum()

    def loss(self, out: NetOutput, y: torch.Tensor) -> torch.Tensor:
        return self.bag_loss(out.logits, y)

    def run_net(self, bags: Bags) -> NetOutput:
        """The prediction-time forward pass (stochastic models average several passes here)."""
        return self.net(bags)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Network parameters split as the paper's Table 1: likelihood and variational parameters."""
        return {"likelihood": list(self.net.parameters()), "variational": []}

    def n_parameters(self) -> dict[str, int]:
        """Parameter counts per group, summed over the P stacked networks (P = 1 for categorical)."""
        if self.net is None:
            raise RuntimeError("model is not fitted; call fit() or load() first")
        return {k: sum(p.numel() for p in group) for k, group in self.parameter_groups().items()}

    # shared implementation ----------------------------------------------------------------------
    def _device(self) -> torch.device:
        return torch.device(resolve_device(self.config.device))

    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> NeuralMIL:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        device = self._device()
        y_t = self.likelihood.prepare_labels(y)
        if len(y_t) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} bags but {len(y_t)} labels")
        n_outputs = self.likelihood.n_outputs(y_t)
        categorical = isinstance(self.likelihood, Categorical)
        self.net_shape = (1, bags.n_features, n_outputs) if categorical else (n_outputs, bags.n_features, 1)
        bags, self.covariate_coef = regress_out_covariates(bags, covariates)
        bags = bags.to(device)
        y_t = (y_t if categorical else y_t.float()).to(device)
        self.net = self.build_net(*self.net_shape).to(device)
        optimiser = self.make_optimiser(self.net.parameters())
        scheduler = self.make_scheduler(optimiser)
        shuffle = torch.Generator().manual_seed(cfg.seed)

        def run_epoch(epoch: int) -> float:
            self.net.train()
            total = 0.0
            for idx in shuffled_minibatches(bags.n_bags, cfg.batch_size, shuffle):
                loss = self.loss(self.net(bags.subset(idx)), y_t[idx.to(device)])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            if scheduler is not None:
                scheduler.step()
            return total / bags.n_bags

        record = train_epochs(
            run_epoch, cfg.n_epochs, name=self.display_name, progress=cfg.progress, early_stopping=self.early_stopping()
        )
        self.history, self.epoch_seconds = record.loss.astype(float), record.epoch_seconds
        self.net.eval()
        return self

    def _forward(self, bags: Bags, covariates: np.ndarray | None) -> NetOutput:
        if self.net is None:
            raise RuntimeError("model is not fitted; call fit() or load() first")
        bags, _ = regress_out_covariates(bags, covariates, self.covariate_coef, fitting=False)
        with torch.no_grad():
            return self.run_net(bags.to(self._device()))

    def predict(self, bags: Bags, covariates: np.ndarray | None = None) -> Prediction:
        """Bag logits (``bag_effect``, ``linear_predictor``) and expected labels (``mean``). With the Huber
        loss the network output is itself the predicted label."""
        logits = self._forward(bags, covariates).logits
        if self.config.loss == "huber":
            eta = mean = logits[..., 0]
        elif isinstance(self.likelihood, Categorical):
            eta, mean = logits[:, 0], torch.softmax(logits[:, 0], -1)
        else:
            eta = logits[..., 0]
            mean = self.likelihood.mean(eta)
        eta = eta.cpu().numpy()
        return Prediction(eta, eta, mean.cpu().numpy())

    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None) -> np.ndarray:
        """(instances, P) for independent traits; (instances, C) for categorical labels."""
        scores = self._forward(bags, covariates).instance_scores
        return scores.reshape(scores.shape[0], -1).cpu().numpy()

    def save(self, path: str | Path) -> None:
        if self.net is None:
            raise RuntimeError("model is not fitted; nothing to save")
        n_classes = self.likelihood.n_classes if isinstance(self.likelihood, Categorical) else None
        save_model(
            path, self.format, self.config, net_shape=list(self.net_shape), n_classes=n_classes,
            covariate_coef=self.covariate_coef, state_dict=state_dict_cpu(self.net), history=self.history,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> NeuralMIL:
        payload = load_model(path, cls.format, cls.__name__)
        config = cls.config_class(**payload["config"])
        if payload["n_classes"] is not None:
            config.n_classes = payload["n_classes"]
        model = cls(config)
        model.net_shape = tuple(payload["net_shape"])
        net = model.build_net(*model.net_shape)
        net.load_state_dict(payload["state_dict"])
        model.net = net.to(model._device()).eval()
        model.covariate_coef = as_array(payload["covariate_coef"])
        model.history = as_array(payload.get("history"))
        return model
