import numpy as np
import pytest
import torch
from torch.distributions import Binomial, Categorical, Normal

from mixmil_workflow.models.likelihoods import LabelError, make_likelihood


def test_binomial_log_prob_matches_torch():
    eta = torch.randn(5, 3, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (5, 3)).double()
    got = make_likelihood("binomial", n_trials=2).log_prob(eta, y)
    want = Binomial(2, logits=eta).log_prob(y.unsqueeze(-1)).sum(1)
    torch.testing.assert_close(got, want)


def test_categorical_and_gaussian_log_prob_match_torch():
    eta = torch.randn(6, 4, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    got = make_likelihood("categorical").log_prob(eta, y)
    want = Categorical(logits=eta.transpose(1, 2)).log_prob(y.unsqueeze(-1))
    torch.testing.assert_close(got, want)

    gauss = make_likelihood("gaussian").double()
    gauss.initialise(4, torch.tensor([0.5, 1.0, 2.0, 3.0]))
    gauss.double()
    yg = torch.randn(6, 4, dtype=torch.float64)
    want = Normal(eta, gauss.log_scale.exp().view(1, -1, 1)).log_prob(yg.unsqueeze(-1)).sum(1)
    torch.testing.assert_close(gauss.log_prob(eta, yg), want)


@pytest.mark.parametrize(
    "name,labels,match",
    [
        ("binomial", [0, 1, 3], "integers in 0..2"),
        ("bernoulli", [0, 0.5], "integers in 0..1"),
        ("binomial", [0, np.nan], "NaN or Inf"),
        ("categorical", [0, -1], "non-negative integer"),
        ("categorical", ["a", "b"], "non-negative integer"),
    ],
)
def test_labels_outside_support_are_rejected(name, labels, match):
    with pytest.raises(LabelError, match=match):
        make_likelihood(name).prepare_labels(np.array(labels))


def test_missing_labels_contribute_nothing_to_the_likelihood_or_its_gradient():
    from mixmil_workflow.models.likelihoods import Binomial

    lik = Binomial(2, allow_missing=True)
    y = lik.prepare_labels(np.array([[0.0, np.nan], [2.0, 1.0], [np.nan, 0.0]]))
    assert torch.isnan(y).sum() == 2
    eta = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    lp = lik.log_prob(eta, y)
    observed = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    full = Binomial(2).log_prob(eta, torch.nan_to_num(y, nan=1.0))  # any value in the missing cells
    per_cell = torch.distributions.Binomial(2, logits=eta).log_prob(torch.nan_to_num(y, nan=1.0)[..., None])
    torch.testing.assert_close(lp, (per_cell * observed[..., None]).sum(1))
    assert not torch.allclose(lp, full)
    (grad,) = torch.autograd.grad(lp.sum(), eta)
    assert (grad[~observed] == 0).all() and (grad[observed] != 0).all()
    assert torch.isfinite(lik.log_constant(y)).all()


def test_missing_labels_need_the_option_and_an_observed_label_per_output():
    from mixmil_workflow.models.likelihoods import LabelError, make_likelihood

    with pytest.raises(LabelError, match="missing_labels=True"):
        make_likelihood("bernoulli").prepare_labels([0.0, np.nan])
    with pytest.raises(LabelError, match=r"outputs \[1\] have no observed label"):
        make_likelihood("bernoulli", allow_missing=True).prepare_labels([[0.0, np.nan], [1.0, np.nan]])
    with pytest.raises(LabelError, match="or NaN"):
        make_likelihood("bernoulli", allow_missing=True).prepare_labels([[0.5], [np.nan]])
    with pytest.raises(ValueError, match="not 'categorical'"):
        make_likelihood("categorical", allow_missing=True)


@pytest.mark.parametrize("n_trials, allow_missing", [(2, False), (1, False), (2, True)])
def test_binomial_written_out_gradient_equals_autograd(n_trials, allow_missing):
    from mixmil_workflow.models.likelihoods import Likelihood

    gen = torch.Generator().manual_seed(0)
    lik = make_likelihood("binomial", n_trials=n_trials, allow_missing=allow_missing)
    raw = torch.randint(0, n_trials + 1, (12, 3), generator=gen).double()
    if allow_missing:
        raw[torch.rand(12, 3, generator=gen) < 0.3] = float("nan")
    y = lik.prepare_labels(raw.numpy())
    eta = torch.randn(12, 3, 5, generator=gen, dtype=torch.float64)
    nll, grad, params = lik.nll_and_grad(eta, y)
    want_nll, want_grad, want_params = Likelihood.nll_and_grad(lik, eta, y)
    torch.testing.assert_close(nll, want_nll)
    torch.testing.assert_close(grad, want_grad)
    assert params == want_params == []
