"""The numba kernels of the dense attention pooling (float32 on the CPU) against torch's ops in double."""

import numpy as np
import pytest
import torch

from mixmil_workflow.models.attention_pool import (
    DenseAttentionPool,
    attention_pool_backward,
    attention_pool_forward,
    uses_pool_kernels,
)


def _pool_in_double(directions: torch.Tensor, x: torch.Tensor, grad_t: torch.Tensor):
    """t and d<grad_t, t>/d(directions) through torch's path in float64 (no kernels there)."""
    directions = directions.double().requires_grad_(True)
    t = DenseAttentionPool.apply(directions, x.double())
    (grad,) = torch.autograd.grad((t * grad_t.double()).sum(), directions)
    return t, grad


@pytest.mark.parametrize(
    ("n_bags", "n_inst", "n_features", "n_pairs", "scale"),
    [(64, 50, 30, 80, 0.3), (7, 1, 4, 3, 1.0), (5, 13, 6, 17, 4.0), (3, 9, 5, 2, 30.0)],
    ids=["simulation", "one-instance", "odd-sizes", "peaked"],
)
def test_kernels_give_the_pooling_and_its_gradient_to_float32_rounding(n_bags, n_inst, n_features, n_pairs, scale):
    gen = torch.Generator().manual_seed(n_bags * 100 + n_inst)
    x = torch.randn(n_bags, n_inst, n_features, generator=gen)
    directions = scale * torch.randn(2 * n_pairs, n_features, generator=gen)
    grad_t = torch.randn(n_pairs, n_bags, generator=gen)
    assert uses_pool_kernels(x) and not uses_pool_kernels(x.double())
    t, cache = attention_pool_forward(directions, x)
    assert len(cache) == 5  # the kernels' cache
    grad = attention_pool_backward(cache, grad_t)
    want_t, want_grad = _pool_in_double(directions, x, grad_t)
    # Relative to the terms' size: the pooled score is a weighted mean of effect scores of size |beta||x|.
    size = scale * np.sqrt(n_features)
    torch.testing.assert_close(t.double(), want_t, atol=1e-6 * size, rtol=1e-5)
    torch.testing.assert_close(grad.double(), want_grad, atol=1e-5 * size * n_bags * n_inst, rtol=1e-4)
    # The backward in place (the training step's) gives the same numbers and spends the cache's scores.
    assert torch.equal(attention_pool_backward(cache, grad_t, in_place=True), grad)


def test_autograd_through_the_kernels_equals_their_backward():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 11, 5, generator=gen)
    directions = torch.randn(2 * 9, 5, generator=gen, requires_grad=True)
    grad_t = torch.randn(9, 6, generator=gen)
    t = DenseAttentionPool.apply(directions, x)
    (grad,) = torch.autograd.grad(t, directions, grad_t)
    t_direct, cache = attention_pool_forward(directions.detach(), x)
    assert torch.equal(t, t_direct)
    assert torch.equal(grad, attention_pool_backward(cache, grad_t))


def test_kernels_weights_are_a_softmax_and_nan_propagates():
    x = torch.zeros(2, 4, 3)
    # One instance takes all the weight; without the shift by the maximum its exp would overflow float32.
    x[0, :, 0] = torch.tensor([0.0, 1.0, 2.0, 102.0])
    directions = torch.zeros(2 * 1, 3)
    directions[0, 0] = 1.0  # gamma picks feature 0
    directions[1, 0] = 1.0  # beta too: t = the attended instance's feature 0
    t, _ = attention_pool_forward(directions, x)
    assert t[0, 0].item() == pytest.approx(102.0)
    assert t[0, 1].item() == 0.0  # all-zero bag: uniform weights over zero scores
    x[1, 2, 1] = float("nan")
    directions[0, 1] = 1.0
    t, _ = attention_pool_forward(directions, x)
    assert torch.isnan(t[0, 1]) and torch.isfinite(t[0, 0])


def test_kernels_take_a_minibatch_without_bags_or_directions():
    t, cache = attention_pool_forward(torch.randn(8, 3), torch.randn(0, 5, 3))
    assert t.shape == (4, 0)
    assert torch.equal(attention_pool_backward(cache, torch.randn(4, 0)), torch.zeros(8, 3))
    t, cache = attention_pool_forward(torch.randn(0, 3), torch.randn(2, 5, 3))
    assert t.shape == (0, 2) and attention_pool_backward(cache, t).shape == (0, 3)
