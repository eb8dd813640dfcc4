import numpy as np
import pytest
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.segment import has_torch_scatter, segment_softmax, segment_sum
from tests.support.data import ragged_bags


def _dense_softmax(bags_list, logits_fn):
    return [torch.softmax(logits_fn(torch.as_tensor(b)), 0) for b in bags_list]


def test_segment_softmax_sums_to_one_and_matches_dense():
    bags_list = ragged_bags(n_bags=12)
    bags = Bags.from_list(bags_list, dtype=torch.float64)
    direction = torch.randn(4, 3, dtype=torch.float64)
    w = segment_softmax(bags.x @ direction, bags.offsets, bags.index)
    sums = segment_sum(w, bags.offsets, bags.index)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    expected = torch.cat(_dense_softmax(bags_list, lambda x: x @ direction))
    torch.testing.assert_close(w, expected)


def test_segment_softmax_is_stable_for_large_logits():
    bags = Bags.from_list([np.array([[1000.0], [1001.0]]), np.array([[-1000.0]])], dtype=torch.float64)
    w = segment_softmax(bags.x[:, 0], bags.offsets, bags.index)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w, torch.tensor([1 / (1 + np.e), np.e / (1 + np.e), 1.0], dtype=torch.float64))


def test_segment_sum_gradient_matches_dense():
    bags_list = ragged_bags(n_bags=5)
    bags = Bags.from_list(bags_list, dtype=torch.float64)
    x = bags.x.clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda v: segment_sum(v, bags.offsets, bags.index), (x,))


@pytest.mark.skipif(not has_torch_scatter(), reason="torch-scatter not installed (optional extra [scatter])")
def test_scatter_backend_matches_torch_backend():
    bags = Bags.from_list(ragged_bags(n_bags=30, q=6), dtype=torch.float64)
    logits = bags.x @ torch.randn(6, 5, dtype=torch.float64)
    for fn in (segment_softmax, segment_sum):
        a = fn(logits, bags.offsets, bags.index, backend="torch")
        b = fn(logits, bags.offsets, bags.index, backend="scatter")
        torch.testing.assert_close(a, b)


def test_unknown_backend_is_rejected():
    bags = Bags.from_list(ragged_bags())
    with pytest.raises(ValueError, match="segment backend"):
        segment_sum(bags.x, bags.offsets, bags.index, backend="cuda-magic")
