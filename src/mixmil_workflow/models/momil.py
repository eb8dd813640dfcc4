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

Training (``schedule``): ``paper`` (default), the paper's Section 3: AdamW, a linear warm-up of
``warmup_epochs`` then cosine annealing to ``min_lr``, early stopping with ``patience`` on the mean
validation ROC-AUC (over ``selection_tasks``, default every task with both classes among its observed
validation labels; the validation loss where no task has) of a seeded ``validation_fraction`` of the
training bags, the best epoch's weights kept; ``dsmil``, the earlier schedule: Adam (0.5, 0.9) with L2
weight decay and cosine annealing for every epoch on all training bags, as the DSMIL reference.

Where this differs from the paper (Section 2.1): the paper's heads have their own MLP projector F_gamma_t
before the attention; the ABMIL head has it (its instance encoder), the DSMIL head attends over the
shared projection directly.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_mil import StackedAttentionNet
from mixmil_workflow.models.dsmil import StackedDSMILNet
from mixmil_workflow.models.likelihoods import make_likelihood
from mixmil_workflow.models.neural import Dropout, NetOutput, NeuralMIL
from mixmil_workflow.models.options import MoMILConfig

HEADS = ("dsmil", "abmil")
SCHEDULES = ("paper", "dsmil")


class MoMILNet(nn.Module):
    def __init__(self, n_tasks: int, n_features: int, cfg: MoMILConfig):
        super().__init__()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.projector = nn.Linear(n_features, cfg.projector_dim)
        with torch.no_grad():  # seeded like the heads, independent of the global RNG
            bound = 1 / np.sqrt(n_features)
            self.projector.weight.uniform_(-bound, bound, generator=gen)
            self.projector.bias.uniform_(-bound, bound, generator=gen)
        self.dropout = Dropout(cfg.dropout)
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
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"MoMIL schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
        if cfg.schedule == "paper" and not 0 < cfg.validation_fraction < 1:
            raise ValueError(f"MoMIL validation_fraction must lie in (0, 1), got {cfg.validation_fraction}")
        # NaN = a task not measured on the bag (masked from the loss, never imputed as negative)
        self.likelihood = make_likelihood(cfg.likelihood, cfg.n_trials, allow_missing=True)
        self.task_pos_weight: torch.Tensor | None = None
        self._validation = self._best = None  # during a fit with the paper's schedule
        self.best_epoch, self.validation_history = -1, np.zeros(0)

    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> MoMIL:
        cfg = self.config
        y_t = self.likelihood.prepare_labels(y)
        if len(y_t) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} bags but {len(y_t)} labels")
        self.best_epoch, self.validation_history = -1, np.zeros(0)
        train = np.arange(bags.n_bags)
        if cfg.schedule == "paper":
            order = np.random.default_rng(cfg.seed).permutation(bags.n_bags)
            n_valid = int(round(cfg.validation_fraction * bags.n_bags))
            if n_valid < 1 or n_valid >= bags.n_bags:
                raise ValueError(
                    f"MoMIL validation_fraction {cfg.validation_fraction} of {bags.n_bags} bags leaves no training "
                    "or no validation bags; use more bags or schedule: dsmil"
                )
            valid, train = np.sort(order[:n_valid]), np.sort(order[n_valid:])
            valid_cov = None if covariates is None else covariates[valid]
            self._validation = (bags.subset(torch.as_tensor(valid)), y_t[valid].numpy(), valid_cov, [])
        y_train = y_t[train]
        if cfg.pos_weight:
            observed = ~torch.isnan(y_train)
            positives = torch.nansum(y_train, 0)
            self.task_pos_weight = ((observed.sum(0) - positives) / positives.clamp_min(1)).float()
        fitted_bags = bags if len(train) == bags.n_bags else bags.subset(torch.as_tensor(train))
        fitted_cov = None if covariates is None else covariates[train]
        self._best = {"value": -math.inf, "epoch": -1, "state": None}
        super().fit(fitted_bags, y_train.numpy(), fitted_cov)
        if self._validation is not None:
            self.validation_history = np.asarray(self._validation[3], dtype=float)
            self.best_epoch = self._best["epoch"]
            if self._best["state"] is not None:
                self.net.load_state_dict(self._best["state"])
            self.net.eval()
        self._validation, self._best = None, None
        return self

    def validation_score(self) -> float:
        """Mean ROC-AUC over the selection tasks' observed validation labels (higher is better); minus the
        masked validation loss where no task has both classes."""
        from sklearn.metrics import roc_auc_score

        bags, y, covariates, _ = self._validation
        self.net.eval()  # no dropout; the next epoch sets train mode again
        prob = self.predict(bags, covariates).mean
        tasks = self.config.selection_tasks or range(y.shape[1])
        aucs = []
        for t in tasks:
            seen = ~np.isnan(y[:, t])
            labels = (y[seen, t] / self.likelihood.n_trials) > 0.5
            if len(np.unique(labels)) == 2:
                aucs.append(roc_auc_score(labels, prob[seen, t]))
        if aucs:
            return float(np.mean(aucs))
        out = self._forward(bags, covariates)
        return -float(self.loss(out, torch.as_tensor(y, dtype=torch.float32, device=out.logits.device)))

    def early_stopping(self):
        """The paper's schedule: score the validation bags after every epoch, keep the best epoch's weights
        from the end of the warm-up on, stop ``patience`` epochs after it."""
        if self._validation is None:
            return None

        warmup = self.config.warmup_epochs

        def stop(epoch: int, loss: float) -> bool:
            value = self.validation_score()
            self._validation[3].append(value)
            if epoch + 1 < warmup:  # the learning rate is still rising: no epoch is selected or stops the run
                return False
            if value > self._best["value"]:
                self._best.update(value=value, epoch=epoch, state=copy.deepcopy(self.net.state_dict()))
            return epoch - self._best["epoch"] >= self.config.patience

        return stop

    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module:
        return MoMILNet(n_nets, n_features, self.config)

    def make_optimiser(self, params) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.schedule == "paper":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        return torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay, fused=True)

    def make_scheduler(self, optimiser):
        cfg = self.config
        if cfg.schedule == "dsmil":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, cfg.n_epochs), eta_min=cfg.min_lr)
        warmup, total, floor = cfg.warmup_epochs, max(1, cfg.n_epochs), cfg.min_lr / cfg.lr

        def factor(epoch: int) -> float:  # the learning rate of the epoch after ``epoch`` scheduler steps
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            progress = (epoch - warmup) / max(1, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)

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
