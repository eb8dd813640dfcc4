"""MixMIL's generative model and ELBO (paper Eq. 3-11, Appendix A), as a torch module.

For bag n with instances X_n (I_n x Q), covariates F_n and output p:

    w_n = softmax(X_n gamma_p)                  attention over the bag's instances
    t_n = w_n^T X_n beta_p                      attention-pooled embedding projected on beta_p
    u_n = b_p (t_n - m_p) / s_p                 Appendix A: standardised, scaled by b_p = RMS(beta_p)
    eta_n = F_n alpha_p + u_n                   linear predictor, y_np ~ likelihood(eta_n)

with random effects gamma_p ~ N(0, sigma_gamma_p^2 I), beta_p ~ N(0, sigma_beta_p^2 I). During training
m_p, s_p are the mean and standard deviation of t over the minibatch (per posterior sample). For
prediction they are the training-set statistics, computed once after training for a fixed set of
posterior samples, so a bag's prediction never depends on the other bags predicted with it.

This module only holds parameters and computes; training and the user API live in ``mixmil.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import nn

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_pool import (
    DenseAttentionPool,
    PaddedAttentionPool,
    attention_pool_backward,
    attention_pool_forward,
    pad_buckets,
    padded_attention_pass,
    padded_attention_pool_backward,
    padded_attention_pool_forward,
    padded_attention_weights,
)
from mixmil_workflow.models.likelihoods import Binomial, Likelihood
from mixmil_workflow.models.mixmil_cpu_step import CPUKernelStep
from mixmil_workflow.models.order_statistics import tail_quantiles
from mixmil_workflow.models.posterior import GaussianPosterior
from mixmil_workflow.models.segment import segment_softmax, segment_sum


class MixMILModule(nn.Module):
    def __init__(
        self,
        likelihood: Likelihood,
        alpha: torch.Tensor,
        posterior_mean: torch.Tensor,
        posterior_sd: torch.Tensor,
        prior_var_gamma: torch.Tensor,
        prior_var_beta: torch.Tensor,
        posterior: str = "full_rank",
        segment_backend: str = "torch",
    ):
        """``alpha`` (K, P); ``posterior_mean``/``posterior_sd`` (P, 2Q) for [gamma; beta]; prior
        variances (P,)."""
        super().__init__()
        self.likelihood = likelihood
        self.n_features = posterior_mean.shape[1] // 2
        self.segment_backend = segment_backend
        # On the CPU, binomial and Bernoulli steps run around the pooling in numba kernels (the same draws;
        # gradients equal to rounding). False keeps the torch step, the GPU's path, everywhere.
        self.fused_cpu_step = True
        self.alpha = nn.Parameter(alpha.clone())
        # Prior log standard deviations per output: column 0 for gamma, column 1 for beta.
        self.log_sigma = nn.Parameter(0.5 * torch.log(torch.stack([prior_var_gamma, prior_var_beta], 1)))
        self.q = GaussianPosterior(posterior_mean, posterior_sd, posterior)
        # Prediction state, filled by set_prediction_state() after training.
        p = alpha.shape[1]
        self.register_buffer("pred_theta", posterior_mean.new_zeros(0, p, 2 * self.n_features))
        self.register_buffer("pred_center", posterior_mean.new_zeros(p, 0))
        self.register_buffer("pred_scale", posterior_mean.new_zeros(p, 0))
        self.register_buffer("mean_center", posterior_mean.new_zeros(p))
        self.register_buffer("mean_scale", posterior_mean.new_ones(p))

    @property
    def uses_cpu_kernels(self) -> bool:
        """Whether training steps run in the CPU kernels (:class:`CPUKernelStep`) or in torch ops."""
        return self.fused_cpu_step and self.alpha.device.type == "cpu" and isinstance(self.likelihood, Binomial)

    @property
    def n_outputs(self) -> int:
        return self.alpha.shape[1]

    # core computation --------------------------------------------------------------------------
    def _directions(self, theta: torch.Tensor) -> torch.Tensor:
        """theta (S, P, 2Q) -> (2*S*P, Q): the S*P attention directions gamma, then the effects beta."""
        s, p, _ = theta.shape
        return theta.view(s, p, 2, self.n_features).permute(2, 0, 1, 3).reshape(2 * s * p, self.n_features)

    def pooled_scores(
        self, bags: Bags | None, theta: torch.Tensor, dense_x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """t = w^T X beta for every bag and posterior sample, shape (B, S, P).

        ``dense_x`` (B, I, Q) is the equal-size fast path (equal-size ``bags`` take it through their
        zero-copy dense view); bags of different sizes are pooled in padded buckets of similar size
        (or by torch-scatter's segment ops with ``segment_backend="scatter"``).
        """
        s, p, _ = theta.shape
        directions = self._directions(theta)
        if dense_x is None and bags.is_equal_size:
            dense_x = bags.dense()
        if dense_x is not None:
            t = DenseAttentionPool.apply(directions, dense_x)  # (S*P, B)
        elif self.segment_backend == "scatter":
            t = self._segment_pool(bags, directions)
        elif torch.is_grad_enabled() and directions.requires_grad:
            t = PaddedAttentionPool.apply(directions, pad_buckets(bags, directions.shape[0]), bags.n_bags)
        else:
            t, _ = padded_attention_pool_forward(directions, pad_buckets(bags, directions.shape[0]), bags.n_bags, False)
        return t.view(s, p, -1).permute(2, 0, 1)

    def _segment_pool(self, bags: Bags, directions: torch.Tensor) -> torch.Tensor:
        """The pooled scores (K, B) for stacked directions (2K, Q) through segment ops over the flat
        instance matrix (autograd; the ``scatter`` backend)."""
        gamma, beta = directions.view(2, directions.shape[0] // 2, -1).unbind(0)
        weights = segment_softmax(bags.x @ gamma.T, bags.offsets, bags.index, self.segment_backend)
        return segment_sum(weights * (bags.x @ beta.T), bags.offsets, bags.index, self.segment_backend).T

    def attention(self, bags: Bags, theta: torch.Tensor) -> torch.Tensor:
        """Instance weights softmax(X gamma) per posterior sample, shape (n_instances, S, P)."""
        s, p, _ = theta.shape
        gamma = theta[:, :, : self.n_features].reshape(s * p, -1)
        if self.segment_backend == "scatter":
            logits = (bags.x @ gamma.T).view(bags.n_instances, s, p)
            return segment_softmax(logits, bags.offsets, bags.index, self.segment_backend)
        return padded_attention_weights(gamma, bags, pad_buckets(bags, gamma.shape[0])).view(bags.n_instances, s, p)

    def pools_in_buckets(self, bags: Bags) -> bool:
        """Whether ``bags`` are pooled in padded buckets (bags of different sizes, default backend), where
        one pass gives both the pooled scores and the weights' statistics."""
        return not bags.is_equal_size and self.segment_backend != "scatter"

    @torch.no_grad()
    def posterior_pass(
        self, bags: Bags, theta: torch.Tensor, effects: bool = True, summarise=None, n_stats: int = 0
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """For the posterior samples ``theta`` (S, P, 2Q): with ``effects`` the pooled scores t (B, S, P),
        with ``summarise`` statistics over the samples of the instance weights softmax(X gamma), shape
        (n_stats, n_instances, P) (``summarise`` maps a stack (bags, S, M) of weights, samples on axis -2,
        to ``n_stats`` tensors (bags, M)). Bags pooled in buckets get both from one pass."""
        s, p, _ = theta.shape
        gamma, beta = theta[:, :, : self.n_features], theta[:, :, self.n_features :]
        if self.pools_in_buckets(bags):
            t, stats = padded_attention_pass(gamma, beta if effects else None, bags, summarise, n_stats)
            return (None if t is None else t.permute(2, 0, 1)), stats
        t = self.pooled_scores(bags, theta) if effects else None
        if summarise is None:
            return t, None
        if self.segment_backend == "scatter":
            slab = self.attention(bags, theta).permute(1, 0, 2).reshape(s, -1)  # (S, instances x P)
            return t, torch.stack([stat.view(bags.n_instances, p) for stat in summarise(slab)])
        return t, padded_attention_pass(gamma, None, bags, summarise, n_stats)[1]  # equal sizes: no padding

    def effect_scale(self, theta: torch.Tensor) -> torch.Tensor:
        """b = RMS(beta) per sample and output, shape (S, P)."""
        return theta[:, :, self.n_features :].square().mean(-1).sqrt()

    # training ---------------------------------------------------------------------------------
    def loss(
        self,
        bags: Bags,
        fe: torch.Tensor,
        y: torch.Tensor,
        n_train: int,
        n_samples: int,
        generator: torch.Generator | None = None,
        dense_x: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO per training bag on one minibatch (>= 2 bags): (loss, -loglik, KL/N), as an
        autograd graph. Training uses :meth:`training_step`, its closed-form twin (the tests hold the two
        to the same values and gradients)."""
        scale_tril = self.q.scale_tril()
        theta = self.q.rsample(n_samples, generator, scale_tril)
        t = self.pooled_scores(bags, theta, dense_x)
        # Appendix A with minibatch statistics (unbiased sd, as a batch-norm layer in training).
        u = self.effect_scale(theta) * (t - t.mean(0)) / t.std(0).clamp_min(1e-8)
        eta = (fe @ self.alpha).unsqueeze(1) + u  # (B, S, P)
        # The label-only normalising constant is left out here (no gradient); fit() adds it per epoch.
        nll = -self.likelihood.log_prob(eta.transpose(1, 2), y, constant=False).mean()
        kl = self.q.kl_to_prior(self.log_sigma, scale_tril).sum() / n_train
        return nll + kl, nll.detach(), kl.detach()

    @torch.no_grad()
    def training_step(
        self,
        dense_x: torch.Tensor | None,
        fe: torch.Tensor,
        y: torch.Tensor,
        n_train: int,
        n_samples: int,
        generator: torch.Generator | None = None,
        bags: Bags | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`loss` on one minibatch (``dense_x`` (B, I, Q) for equal-size bags, else ``bags``) with
        its gradients written into ``.grad`` of every parameter; returns (loss, -loglik, KL/N).

        Why not ``loss().backward()``: at the paper's sizes a step is a few hundred small tensor ops, and
        on a CPU the autograd graph costs as much as the arithmetic. The likelihood's gradient comes from
        :meth:`Likelihood.nll_and_grad` (written out for the binomial and Bernoulli, autograd for the
        others); the standardisation of Appendix A, the attention pooling, the reparameterised samples and
        the KL have their derivatives written out below, in ``attention_pool`` and in
        :meth:`GaussianPosterior.backward_with_kl`.
        """
        if self.uses_cpu_kernels:
            # A fit prepares this step once (MixMIL._train); prepared here, it is the same step.
            nll, kl = CPUKernelStep(self, n_samples, n_train)(dense_x, bags, fe, y, generator)
            nll, kl = torch.from_numpy(np.asarray(nll)), torch.from_numpy(np.asarray(kl))
            return nll + kl, nll, kl
        pool = partial(self._pool_with_backward, dense_x=dense_x, bags=bags)
        theta, eps, factor = self.q.sample_with_noise(n_samples, generator)
        s, p, d = theta.shape
        q = d // 2
        t, pool_backward = pool(self._directions(theta))
        n_bags = t.shape[1]
        t = t.view(s, p, n_bags)
        # Appendix A: u = b (t - m) / sd with minibatch mean and unbiased sd per sample and output.
        beta = theta[..., q:]
        effect = beta.square().mean(-1).sqrt()  # b = RMS(beta), (S, P)
        centred = t - t.mean(-1, keepdim=True)
        raw_sd = centred.square().sum(-1, keepdim=True).div_(n_bags - 1).sqrt_()
        sd = raw_sd.clamp_min(1e-8)
        xhat = centred / sd
        eta = (fe @ self.alpha).unsqueeze(-1) + (effect.unsqueeze(-1) * xhat).permute(2, 1, 0)
        # The label-only normalising constant is left out (no gradient), as in loss().
        nll, grad_eta, grad_lik = self.likelihood.nll_and_grad(eta, y)
        for param, grad in zip(self.likelihood.parameters(), grad_lik, strict=True):
            param.grad = grad
        self.alpha.grad = fe.T @ grad_eta.sum(-1)
        grad_u = grad_eta.permute(2, 1, 0)  # (S, P, B)
        grad_effect = (grad_u * xhat).sum(-1)
        grad_xhat = grad_u * effect.unsqueeze(-1)
        # Through the standardisation (as batch norm's backward; no sd term where the sd was clamped).
        along_xhat = (grad_xhat * xhat).sum(-1, keepdim=True).div_(n_bags - 1).masked_fill_(raw_sd < 1e-8, 0.0)
        grad_t = (grad_xhat - grad_xhat.mean(-1, keepdim=True) - xhat * along_xhat).div_(sd).reshape(s * p, n_bags)
        grad_theta = pool_backward(grad_t).view(2, s, p, q).permute(1, 2, 0, 3).reshape(s, p, d)
        grad_theta[..., q:] += (grad_effect / (q * effect)).unsqueeze(-1) * beta  # db/dbeta = beta / (Q b)
        kl, grad_log_sigma = self.q.backward_with_kl(grad_theta, eps, factor, self.log_sigma, 1.0 / n_train)
        self.log_sigma.grad = grad_log_sigma
        kl = kl.sum() / n_train
        return nll + kl, nll, kl

    def _pool_with_backward(
        self, directions: torch.Tensor, dense_x: torch.Tensor | None, bags: Bags | None
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The pooled scores t (K, B) of the stacked directions (2K, Q) and the function that maps dL/dt
        (K, B) to dL/d(directions) (2K, Q): dense bags, padded buckets, or torch-scatter's segment ops
        (autograd for the pooling alone)."""
        if dense_x is not None:
            t, cache = attention_pool_forward(directions, dense_x)
            return t, lambda grad_t: attention_pool_backward(cache, grad_t, in_place=True)
        if self.segment_backend != "scatter":
            buckets = pad_buckets(bags, directions.shape[0])
            t, cache = padded_attention_pool_forward(directions, buckets, bags.n_bags)
            return t, lambda grad_t: padded_attention_pool_backward(cache, grad_t)
        directions.requires_grad_(True)
        with torch.enable_grad():
            t_graph = self._segment_pool(bags, directions)
        return t_graph.detach(), lambda grad_t: torch.autograd.grad(t_graph, directions, grad_t)[0]

    # prediction -------------------------------------------------------------------------------
    @torch.no_grad()
    def set_prediction_state(self, bags: Bags, n_samples: int, generator: torch.Generator, chunk: int) -> None:
        """Freeze ``n_samples`` posterior samples and the training-set mean/sd of t for each of them and
        for the posterior mean (Appendix A: "keeping track of training set statistics for inference")."""
        theta = torch.cat([self.q.mu.unsqueeze(0), self.q.rsample(n_samples, generator)], 0)
        t = torch.cat([self.pooled_scores(bags.slice(a, b), theta) for a, b in bags.chunks(chunk)], 0)
        center, scale = t.mean(0).T, t.std(0).clamp_min(1e-8).T  # (P, 1 + S)
        self.pred_theta = theta[1:].clone()
        self.pred_center, self.pred_scale = center[:, 1:].clone(), scale[:, 1:].clone()
        self.mean_center, self.mean_scale = center[:, 0].clone(), scale[:, 0].clone()

    @property
    def has_prediction_state(self) -> bool:
        return self.pred_theta.shape[0] > 0

    @torch.no_grad()
    def predictive_samples(
        self, bags: Bags, chunk: int, summarise=None, n_stats: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """u for every frozen posterior sample, shape (B, P, S), and, with ``summarise``, the statistics of
        the instance weights over the same samples (see :meth:`posterior_pass`), chunk by chunk of bags."""
        theta = self.pred_theta
        b = self.effect_scale(theta)  # (S, P)
        effects, stats = [], []
        for lo, hi in bags.chunks(chunk):
            t, part = self.posterior_pass(bags.slice(lo, hi), theta, True, summarise, n_stats)  # (b, S, P)
            effects.append((b * (t - self.pred_center.T) / self.pred_scale.T).transpose(1, 2))
            stats.append(part)
        return torch.cat(effects, 0), (None if summarise is None else torch.cat(stats, 1))

    @torch.no_grad()
    def bag_effect_at_mean(self, bags: Bags, chunk: int) -> torch.Tensor:
        """u at the posterior mean (plug-in), shape (B, P)."""
        theta = self.q.mu.unsqueeze(0)
        b = self.effect_scale(theta)[0]
        t = torch.cat([self.pooled_scores(bags.slice(lo, hi), theta)[:, 0] for lo, hi in bags.chunks(chunk)], 0)
        return b * (t - self.mean_center) / self.mean_scale


def weight_summary(lower_q: float, upper_q: float):
    """The summary of :meth:`MixMILModule.posterior_pass` for instance weights: mean and the ``lower_q`` /
    ``upper_q`` sample quantiles over the posterior samples (3 statistics)."""

    def summarise(stack: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (stack.mean(-2), *tail_quantiles(stack, lower_q, upper_q))

    return summarise


def weight_mean(stack: torch.Tensor) -> tuple[torch.Tensor]:
    """The summary of :meth:`MixMILModule.posterior_pass` for instance scores: the posterior mean only."""
    return (stack.mean(-2),)
