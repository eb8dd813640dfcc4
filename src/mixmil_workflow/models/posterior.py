"""Gaussian variational posteriors over theta_p = [gamma_p; beta_p] in R^{2Q}, one per output p.

* Full rank (paper Eq. 10): N(mu_p, L_p L_p^T) with L_p lower triangular and a positive diagonal,
  i.e. 2Q mean and Q(2Q + 1) covariance parameters per output, exactly the paper's count. A
  triangular factor makes log|Sigma| a sum of log-diagonals, so the KL needs no Cholesky per step.
* Mean field: N(mu_p, diag(s_p^2)), 2Q + 2Q parameters per output.

The prior is p(theta_p) = N(0, diag(sigma_gamma_p^2 1_Q, sigma_beta_p^2 1_Q)); its KL is analytic.
"""

from __future__ import annotations

import torch
from torch import nn

POSTERIORS = ("full_rank", "mean_field")


class GaussianPosterior(nn.Module):
    def __init__(self, mean: torch.Tensor, sd: torch.Tensor, kind: str = "full_rank"):
        """``mean`` and ``sd`` are (P, 2Q) initial values (sd > 0)."""
        super().__init__()
        if kind not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, got {kind!r}")
        if mean.shape != sd.shape or mean.ndim != 2:
            raise ValueError("posterior mean and sd must both be (outputs, 2Q)")
        self.kind = kind
        self.mu = nn.Parameter(mean.clone())
        self.log_sd = nn.Parameter(torch.log(sd.clamp_min(1e-6)))
        if kind == "full_rank":
            dim = mean.shape[1]
            # Only the strictly lower triangle is used; the diagonal lives in log_sd.
            self.tril = nn.Parameter(mean.new_zeros(mean.shape[0], dim, dim))
            self.register_buffer("mask", torch.tril(torch.ones(dim, dim, dtype=mean.dtype), -1), persistent=False)

    @property
    def n_outputs(self) -> int:
        return self.mu.shape[0]

    @property
    def dim(self) -> int:
        return self.mu.shape[1]

    def scale_tril(self) -> torch.Tensor:
        """Lower-triangular covariance factor (P, 2Q, 2Q)."""
        if self.kind == "mean_field":
            return torch.diag_embed(self.log_sd.exp())
        return self.tril * self.mask + torch.diag_embed(self.log_sd.exp())

    def n_parameters(self) -> int:
        """Free variational parameters (the masked upper triangle is not counted)."""
        p, d = self.mu.shape
        if self.kind == "mean_field":
            return p * 2 * d
        return p * (d + d * (d + 1) // 2)

    def rsample(
        self, n_samples: int, generator: torch.Generator | None = None, scale_tril: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Reparameterised samples, shape (S, P, 2Q). ``scale_tril`` may be passed if already computed."""
        eps = torch.randn((n_samples, *self.mu.shape), generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        if self.kind == "mean_field":
            return self.mu + self.log_sd.exp() * eps
        factor = self.scale_tril() if scale_tril is None else scale_tril
        return self.mu + torch.einsum("pij,spj->spi", factor, eps)

    def marginal_var(self, scale_tril: torch.Tensor | None = None) -> torch.Tensor:
        """diag(Sigma_p), shape (P, 2Q)."""
        if self.kind == "mean_field":
            return (2 * self.log_sd).exp()
        factor = self.scale_tril() if scale_tril is None else scale_tril
        return factor.square().sum(-1)

    def log_det(self) -> torch.Tensor:
        """log|Sigma_p|, shape (P,)."""
        return 2 * self.log_sd.sum(-1)

    def kl_to_prior(self, log_sigma: torch.Tensor, scale_tril: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q_p || N(0, diag(s_p0^2 1_Q, s_p1^2 1_Q))) per output, shape (P,).

        ``log_sigma`` (P, 2) holds the prior log standard deviations of the two halves of theta
        (gamma, beta). Written per half, so no (P, 2Q) prior tensor is built in the training loop.
        """
        half = self.dim // 2
        second_moment = (self.marginal_var(scale_tril) + self.mu.square()).view(-1, 2, half).sum(-1)  # (P, 2)
        return 0.5 * (
            (second_moment * torch.exp(-2 * log_sigma)).sum(-1)
            - self.dim
            + 2 * half * log_sigma.sum(-1)
            - self.log_det()
        )

    # closed-form training step (MixMILModule.training_step) -----------------------------------
    @torch.no_grad()
    def sample_with_noise(
        self, n_samples: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The samples of :meth:`rsample` (same draws for the same generator state) with the standard
        normal noise and the factor that made them, for :meth:`backward_with_kl`:
        theta (S, P, 2Q), eps (S, P, 2Q), factor (P, 2Q) sd for mean field or (P, 2Q, 2Q) scale_tril."""
        eps = torch.randn((n_samples, *self.mu.shape), generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        if self.kind == "mean_field":
            factor = self.log_sd.exp()
            return self.mu + factor * eps, eps, factor
        factor = self.scale_tril()
        return self.mu + torch.matmul(factor, eps.permute(1, 2, 0)).permute(2, 0, 1), eps, factor

    @torch.no_grad()
    def backward_with_kl(
        self,
        grad_theta: torch.Tensor,
        eps: torch.Tensor,
        factor: torch.Tensor,
        log_sigma: torch.Tensor,
        kl_weight: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write into ``.grad`` the gradient of  sum <grad_theta, theta(eps)> + kl_weight * KL  with
        respect to this posterior's parameters (theta = mu + factor eps, the reparameterisation), and
        return (KL per output (P,), gradient with respect to the prior's ``log_sigma`` (P, 2)).

        The KL of :meth:`kl_to_prior` differentiated by hand: with prior precision pi_i of coordinate i,
        dKL/dmu_i = pi_i mu_i, dKL/dL_ij = pi_i L_ij, dKL/dlog sd_i = pi_i var_i - 1 (mean field; for the
        full-rank factor the diagonal L_ii = sd_i carries it), dKL/dlog sigma_h = Q - M_h / sigma_h^2.
        """
        half = self.dim // 2
        inv_var = torch.exp(-2 * log_sigma)  # (P, 2) prior precisions of gamma and beta
        precision = inv_var.repeat_interleave(half, 1)  # (P, 2Q)
        sd = self.log_sd.exp()
        if self.kind == "mean_field":
            marginal = sd.square()
            self.log_sd.grad = (grad_theta * eps).sum(0) * sd + kl_weight * (precision * marginal - 1)
        else:
            marginal = factor.square().sum(-1)
            grad_factor = torch.einsum("spi,spj->pij", grad_theta, eps).add_(
                factor * precision.unsqueeze(-1), alpha=kl_weight
            )
            self.tril.grad = grad_factor * self.mask
            self.log_sd.grad = grad_factor.diagonal(dim1=-2, dim2=-1) * sd - kl_weight
        self.mu.grad = grad_theta.sum(0).add_(self.mu * precision, alpha=kl_weight)
        second_moment = (marginal + self.mu.square()).view(-1, 2, half).sum(-1)  # (P, 2)
        kl = 0.5 * ((second_moment * inv_var).sum(-1) - self.dim + 2 * half * log_sigma.sum(-1) - self.log_det())
        return kl, kl_weight * (half - second_moment * inv_var)
