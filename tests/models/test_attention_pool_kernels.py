"""The CPU kernels of MixMIL's equal-size attention pooling against the torch pooling in double precision."""

import numpy as np
import pytest
import torch

from mixmil_workflow.models.attention_pool import (
    attention_pool_backward,
    attention_pool_backward_cpu,
    attention_pool_forward,
    attention_pool_forward_cpu,
)


def _inputs(n_bags: int, n_inst: int, q: int, n_pairs: int, seed: int, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_bags, n_inst, q, generator=gen)
    directions = scale * torch.randn(2 * n_pairs, q, generator=gen) / q**0.5
    grad_t = torch.randn(n_pairs, n_bags, generator=gen)
    return x, directions, grad_t


def _reference(x, directions, grad_t):
    t, cache = attention_pool_forward(directions.double(), x.double())
    return t, attention_pool_backward(cache, grad_t.double())


@pytest.mark.parametrize(
    ("n_bags", "n_inst", "q", "n_pairs", "scale"),
    [(64, 50, 30, 80, 1.0), (5, 1, 3, 1, 1.0), (3, 7, 4, 13, 1.0), (9, 33, 6, 20, 30.0)],
    ids=["simulation", "one-instance", "odd-sizes", "sharp-attention"],
)
def test_kernel_pooling_equals_the_torch_pooling(n_bags, n_inst, q, n_pairs, scale):
    """Pooled scores and the directions' gradient as the torch pooling's in double precision, for sizes
    that are not multiples of the vector width and for logits spread over tens of units."""
    x, directions, grad_t = _inputs(n_bags, n_inst, q, n_pairs, seed=n_inst, scale=scale)
    t, cache = attention_pool_forward_cpu(directions, x)
    grad = attention_pool_backward_cpu(cache, grad_t)
    want_t, want_grad = _reference(x, directions, grad_t)
    assert t.dtype == grad.dtype == torch.float32
    torch.testing.assert_close(t.double(), want_t, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(grad.double(), want_grad, rtol=1e-4, atol=1e-4 * scale * n_inst**0.5)


def test_kernel_pooling_does_not_depend_on_the_number_of_threads():
    x, directions, grad_t = _inputs(17, 50, 30, 80, seed=4)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            t, cache = attention_pool_forward_cpu(directions, x)
            results.append((t, cache[2].clone(), attention_pool_backward_cpu(cache, grad_t)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            assert torch.equal(got, want)


def test_kernel_pooling_propagates_nan():
    """A NaN feature makes its bag's pooled scores NaN, a NaN attention direction (a diverged sample)
    its pair's, as torch's softmax does (the fit's non-finite check then stops); the rest stay finite."""
    x, directions, _ = _inputs(6, 10, 5, 9, seed=5)
    x[2, 3, 1] = float("nan")
    directions[4, 0] = float("nan")  # the attention direction gamma of pair 4, not its effect beta
    t, _ = attention_pool_forward_cpu(directions, x)
    assert torch.isnan(t[:, 2]).all() and torch.isnan(t[4]).all()
    rest = torch.ones_like(t, dtype=torch.bool)
    rest[:, 2], rest[4] = False, False
    assert torch.isfinite(t[rest]).all()


def test_kernel_exp_is_float32_accurate_on_the_softmax_range():
    from mixmil_workflow.models.attention_pool_kernels import _exp_parts

    grid = np.concatenate([-np.geomspace(1e-7, 87.0, 4000), [0.0]]).astype(np.float32)
    got = np.array([m * np.array([bits], np.int32).view(np.float32)[0] for m, bits in map(_exp_parts, grid)])
    np.testing.assert_allclose(got, np.exp(grid.astype(np.float64)), rtol=3e-7)
