import torch
from torch.distributions import MultivariateNormal, kl_divergence

from mixmil_workflow.models.posterior import GaussianPosterior


def _random_posterior(kind):
    torch.manual_seed(0)
    q = GaussianPosterior(torch.randn(3, 8, dtype=torch.float64), torch.rand(3, 8, dtype=torch.float64) + 0.1, kind)
    with torch.no_grad():
        if kind == "full_rank":
            q.tril.normal_(0, 0.3)
    return q


def test_kl_matches_torch_distributions_closed_form():
    log_sigma = torch.tensor([[0.1, -0.5], [-0.2, 0.0], [0.3, 0.2]], dtype=torch.float64)
    prior = torch.exp(2 * log_sigma).repeat_interleave(4, dim=1)  # (P, 2Q): gamma block, then beta block
    for kind in ("full_rank", "mean_field"):
        q = _random_posterior(kind)
        want = kl_divergence(
            MultivariateNormal(q.mu, scale_tril=q.scale_tril()),
            MultivariateNormal(torch.zeros_like(q.mu), covariance_matrix=torch.diag_embed(prior)),
        )
        torch.testing.assert_close(q.kl_to_prior(log_sigma), want)


def test_samples_have_the_posterior_moments():
    q = _random_posterior("full_rank")
    gen = torch.Generator().manual_seed(1)
    samples = q.rsample(200_000, gen).detach()
    cov = torch.einsum("spi,spj->pij", samples - q.mu, samples - q.mu) / samples.shape[0]
    factor = q.scale_tril().detach()
    torch.testing.assert_close(samples.mean(0), q.mu.detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(cov, factor @ factor.transpose(1, 2), atol=0.03, rtol=0)


def test_parameter_counts_match_the_paper():
    # Paper Section 3.4.2: 2Q means and Q(2Q + 1) covariance parameters (full rank); 2Q + 2Q (mean field).
    q_dim = 30
    full = GaussianPosterior(torch.zeros(1, 2 * q_dim), torch.ones(1, 2 * q_dim), "full_rank")
    mf = GaussianPosterior(torch.zeros(1, 2 * q_dim), torch.ones(1, 2 * q_dim), "mean_field")
    assert full.n_parameters() == 2 * q_dim + q_dim * (2 * q_dim + 1)
    assert mf.n_parameters() == 4 * q_dim
