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

import torch
from torch import nn

from .bags import Bags
from .likelihoods import Likelihood
from .posterior import GaussianPosterior
from .segment import segment_softmax, segment_sum


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
    def n_outputs(self) -> int:
        return self.alpha.shape[1]

    # core computation --------------------------------------------------------------------------
    def _directions(self, theta: torch.Tensor) -> torch.Tensor:
        """theta (S, P, 2Q) -> (2*S*P, Q): the S*P attention directions gamma, then the effects beta."""
        s, p, _ = theta.shape
        return theta.view(s, p, 2, self.n_features).permute(2, 0, 1, 3).reshape(2 * s * p, self.n_features)

    def pooled_scores(
        self, bags: Bags | None, theta: torch.Tensor, dense_xt: torch.Tensor | None = None
    ) -> torch.Tensor:
        """t = w^T X beta for every bag and posterior sample, shape (B, S, P).

        ``dense_xt`` (Q, B, I) is the equal-size fast path: with the instances transposed, both
        projections are plain 2-D matmuls and the softmax runs over a contiguous last axis. Otherwise
        the segment ops run on the flat instance matrix of ``bags``.
        """
        s, p, _ = theta.shape
        directions = self._directions(theta)
        if dense_xt is None and bags.is_equal_size:
            dense_xt = transpose_dense(bags)
        if dense_xt is not None:
            t = DenseAttentionPool.apply(directions, dense_xt)  # (S*P, B)
            return t.view(s, p, -1).permute(2, 0, 1)
        gamma, beta = directions.view(2, s * p, -1).unbind(0)
        weights = segment_softmax(bags.x @ gamma.T, bags.offsets, bags.index, self.segment_backend)
        t = segment_sum(weights * (bags.x @ beta.T), bags.offsets, bags.index, self.segment_backend)
        return t.view(-1, s, p)

    def attention(self, bags: Bags, theta: torch.Tensor) -> torch.Tensor:
        """Instance weights softmax(X gamma) per posterior sample, shape (n_instances, S, P)."""
        s, p, _ = theta.shape
        gamma = theta[:, :, : self.n_features].reshape(s * p, -1).T
        logits = (bags.x @ gamma).view(bags.n_instances, s, p)
        return segment_softmax(logits, bags.offsets, bags.index, self.segment_backend)

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
        dense_xt: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO per training bag on one minibatch (>= 2 bags): (loss, -loglik, KL/N)."""
        scale_tril = self.q.scale_tril()
        theta = self.q.rsample(n_samples, generator, scale_tril)
        t = self.pooled_scores(bags, theta, dense_xt)
        # Appendix A with minibatch statistics (unbiased sd, as a batch-norm layer in training).
        u = self.effect_scale(theta) * (t - t.mean(0)) / t.std(0).clamp_min(1e-8)
        eta = (fe @ self.alpha).unsqueeze(1) + u  # (B, S, P)
        # The label-only normalising constant is left out here (no gradient); fit() adds it per epoch.
        nll = -self.likelihood.log_prob(eta.transpose(1, 2), y, constant=False).mean()
        kl = self.q.kl_to_prior(self.log_sigma, scale_tril).sum() / n_train
        return nll + kl, nll.detach(), kl.detach()

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
    def bag_effect_samples(self, bags: Bags, chunk: int) -> torch.Tensor:
        """u for every frozen posterior sample, shape (B, P, S)."""
        theta = self.pred_theta
        b = self.effect_scale(theta)  # (S, P)
        out = []
        for lo, hi in bags.chunks(chunk):
            t = self.pooled_scores(bags.slice(lo, hi), theta)  # (b, S, P)
            out.append((b * (t - self.pred_center.T) / self.pred_scale.T).transpose(1, 2))
        return torch.cat(out, 0)

    @torch.no_grad()
    def bag_effect_at_mean(self, bags: Bags, chunk: int) -> torch.Tensor:
        """u at the posterior mean (plug-in), shape (B, P)."""
        theta = self.q.mu.unsqueeze(0)
        b = self.effect_scale(theta)[0]
        t = torch.cat([self.pooled_scores(bags.slice(lo, hi), theta)[:, 0] for lo, hi in bags.chunks(chunk)], 0)
        return b * (t - self.mean_center) / self.mean_scale


class DenseAttentionPool(torch.autograd.Function):
    """t[k, b] = sum_i softmax_i(gamma_k^T x_bi) beta_k^T x_bi for equal-size bags.

    ``directions`` stacks the K attention directions gamma_k over the K effect directions beta_k
    (2K, Q); ``xt`` holds the instances as (Q, B, I). The backward is written by hand
    (dt/dz_i = w_i, dt/da_i = w_i (z_i - t)): one matmul each way over the stacked directions, one
    exp pass, and no autograd intermediates. On the 2-core CPU this step is memory-bound and the
    generic softmax/mul/sum autograd graph costs about twice as much.
    """

    @staticmethod
    def forward(ctx, directions: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        q, n_bags, n_inst = xt.shape
        flat = xt.reshape(q, n_bags * n_inst)
        scores = (directions @ flat).view(2, -1, n_bags, n_inst)
        w = torch.softmax(scores[0], dim=-1)
        z = scores[1]
        t = torch.linalg.vecdot(w, z)  # half the time of einsum here (which lowers to tiny bmms)
        ctx.save_for_backward(flat, w, scores, t)
        return t

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor):
        flat, w, scores, t = ctx.saved_tensors
        grad_scores = torch.empty_like(scores)
        gw = torch.mul(w, grad_t.unsqueeze(-1), out=grad_scores[1])  # d/dz = w g
        torch.sub(scores[1], t.unsqueeze(-1), out=grad_scores[0]).mul_(gw)  # d/da = w g (z - t)
        return grad_scores.view(scores.shape[0] * scores.shape[1], -1) @ flat.T, None


def transpose_dense(bags: Bags) -> torch.Tensor:
    """Equal-size bags as a contiguous (Q, B, I) tensor for the fast path."""
    return bags.dense().permute(2, 0, 1).contiguous()
