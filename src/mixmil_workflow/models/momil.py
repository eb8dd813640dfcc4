"""MoMIL (Pati et al., MICCAI 2025): multi-task MIL with hard parameter sharing.

Every instance passes one shared projector, g_i = Dropout(ReLU(W_s x_i + b_s)); each task t (an assay,
or a genetic label) has its own MIL head on the projected instances: DSMIL (default; instance
classifier, critical-instance attention, bag classifier, loss 0.5 BCE(bag) + 0.5 BCE(max instance)) or
ABMIL. The heads are the project's stacked networks with one network per task, so all tasks train in
one pass.

Labels are (bags, tasks) with NaN where a bag has no label for a task: the loss averages the per-label
BCE over the observed labels only, so a missing label is never read as a negative (imputed labels of
a later round enter as observed ones). Optionally each task's positives are weighted by its
negatives / positives ratio among the observed labels (``pos_weight``).

Task selection and conformal label imputation (the paper's other two parts) live in
:mod:`mixmil_workflow.models.momil_tasks`; this module is the network and its training.

Where this differs from the paper (Section 2.1, Section 3): the paper's heads have their own MLP projector
F_gamma_t before the attention; the ABMIL head has it (its instance encoder), the DSMIL head attends
over the shared projection directly. Optimiser: Adam with L2 weight decay and cosine annealing as the
DSMIL reference, not the paper's AdamW with warm-up and early stopping.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_mil import StackedAttentionNet
from mixmil_workflow.models.dsmil import StackedDSMILNet
from mixmil_workflow.models.likelihoods import make_likelihood
from mixmil_workflow.models.neural import NetOutput, NeuralMIL
from mixmil_workflow.models.options import MoMILConfig

HEADS = ("dsmil", "abmil")


class MoMILNet(nn.Module):
    def __init__(self, n_tasks: int, n_features: int, cfg: MoMILConfig):
        super().__init__()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.projector = nn.Linear(n_features, cfg.projector_dim)
        with torch.no_grad():  # seeded like the heads, independent of the global RNG
            bound = 1 / np.sqrt(n_features)
            self.projector.weight.uniform_(-bound, bound, generator=gen)
            self.projector.bias.uniform_(-bound, bound, generator=gen)
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.head == "dsmil":
            self.heads = StackedDSMILNet(n_tasks, cfg.projector_dim, cfg.hidden_dim, 1, cfg.seed + 1, False)
        else:
            self.heads = StackedAttentionNet(
                n_tasks, cfg.projector_dim, cfg.hidden_dim, cfg.hidden_dim, 1, False, cfg.seed + 1
            )

    def forward(self, bags: Bags) -> NetOutput:
        projected = self.dropout(F.relu(self.projector(bags.x)))
        return self.heads(dataclasses.replace(bags, x=projected))


class MoMIL(NeuralMIL):
    """Multi-task MIL: ``fit(bags, y)`` with y (bags, tasks) in {0, 1, NaN} (Bernoulli) or {0..n, NaN}
    (``likelihood="binomial"``, e.g. genotype dosages with n = 2); ``predict`` gives every
    task's bag logit and probability; ``instance_scores`` each head's attention (instances, tasks)."""

    config_class = MoMILConfig
    format = "mixmil_workflow.MoMIL/1"
    display_name = "MoMIL"

    def __init__(self, config: MoMILConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        cfg = self.config
        if cfg.head not in HEADS:
            raise ValueError(f"MoMIL head must be one of {HEADS}, got {cfg.head!r}")
        if cfg.likelihood not in ("bernoulli", "binomial") or cfg.loss != "likelihood":
            raise ValueError(
                "MoMIL fits binary or count task labels (likelihood 'bernoulli' or 'binomial', loss 'likelihood'); "
                f"got likelihood {cfg.likelihood!r}, loss {cfg.loss!r}"
            )
        if cfg.pos_weight and cfg.likelihood != "bernoulli":
            raise ValueError("MoMIL pos_weight balances binary labels; it needs likelihood 'bernoulli'")
        # NaN = a task not measured on the bag (masked from the loss, never imputed as negative)
        self.likelihood = make_likelihood(cfg.likelihood, cfg.n_trials, allow_missing=True)
        self.task_pos_weight: torch.Tensor | None = None

    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> MoMIL:
        y_t = self.likelihood.prepare_labels(y)
        if self.config.pos_weight:
            observed = ~torch.isnan(y_t)
            positives = torch.nansum(y_t, 0)
            self.task_pos_weight = ((observed.sum(0) - positives) / positives.clamp_min(1)).float()
        return super().fit(bags, y_t.numpy(), covariates)

    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module:
        return MoMILNet(n_nets, n_features, self.config)

    def make_optimiser(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.config.lr, betas=(0.5, 0.9), weight_decay=self.config.weight_decay)

    def make_scheduler(self, optimiser):
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=max(1, self.config.n_epochs), eta_min=self.config.min_lr
        )

    def bag_embeddings(self, bags: Bags, covariates: np.ndarray | None = None) -> np.ndarray:
        """Each task head's bag representation before its classifier, (bags, tasks, features): what the
        paper's influence score feeds to a logistic regression (Section 2.2)."""
        return self._forward(bags, covariates).bag_embeddings.cpu().numpy()

    def masked_bce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean BCE over the observed labels; ``logits`` (bags, tasks, 1), ``y`` (bags, tasks) with NaN.
        A minibatch without any observed label gives 0 (and no gradient)."""
        observed = (~torch.isnan(y)).float()
        # Binomial(n) labels: BCE on y / n is their log-likelihood up to a constant (as the other baselines).
        target = torch.nan_to_num(y, nan=0.0) / self.likelihood.n_trials
        pos_weight = None if self.task_pos_weight is None else self.task_pos_weight.to(logits.device)
        per_label = F.binary_cross_entropy_with_logits(logits[..., 0], target, reduction="none", pos_weight=pos_weight)
        return (per_label * observed).sum() / observed.sum().clamp_min(1.0)

    def loss(self, out: NetOutput, y: torch.Tensor) -> torch.Tensor:
        bag = self.masked_bce(out.logits, y)
        if out.aux_logits is None:
            return bag
        return 0.5 * bag + 0.5 * self.masked_bce(out.aux_logits, y)
