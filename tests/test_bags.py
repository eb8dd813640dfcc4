import numpy as np
import pytest
import torch

from mixmil_workflow.bags import BagError, Bags
from tests.support.data import ragged_bags


def test_from_list_layout_and_mean_pool():
    bags_list = ragged_bags()
    bags = Bags.from_list(bags_list, dtype=torch.float64)
    assert bags.n_bags == len(bags_list)
    assert bags.sizes.tolist() == [len(b) for b in bags_list]
    np.testing.assert_allclose(bags.mean_pool().numpy(), np.stack([b.mean(0) for b in bags_list]))


def test_dense_view_is_zero_copy_and_subset_keeps_order():
    x = np.random.default_rng(0).standard_normal((6, 5, 3))
    bags = Bags.from_dense(x, dtype=torch.float64)
    assert bags.is_equal_size and bags.dense().data_ptr() == bags.x.data_ptr()
    sub = bags.subset([4, 1])
    np.testing.assert_array_equal(sub.dense().numpy(), x[[4, 1]])


def test_subset_of_ragged_bags():
    bags_list = ragged_bags(n_bags=9)
    sub = Bags.from_list(bags_list, dtype=torch.float64).subset([7, 0, 3])
    expected = [bags_list[i] for i in (7, 0, 3)]
    for got, want in zip(np.split(sub.x.numpy(), sub.offsets[1:-1].numpy()), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_subset_takes_index_tensors_of_any_integer_type_and_device():
    bags_list = ragged_bags(n_bags=9)
    bags = Bags.from_list(bags_list, dtype=torch.float64)
    want = bags.subset([7, 0, 3])
    for idx in (torch.tensor([7, 0, 3]), torch.tensor([7, 0, 3], dtype=torch.int32), np.array([7, 0, 3])):
        got = bags.subset(idx)
        assert torch.equal(got.x, want.x) and torch.equal(got.offsets, want.offsets)
    if torch.cuda.is_available():  # training draws its minibatch indices on the GPU (MixMIL, neural baselines)
        on_gpu = bags.to("cuda")
        got = on_gpu.subset(torch.tensor([7, 0, 3], device="cuda"))
        assert torch.equal(got.x.cpu(), want.x) and torch.equal(got.offsets.cpu(), want.offsets)
        got = on_gpu.subset(torch.tensor([7, 0, 3]))  # CPU indices into GPU bags
        assert torch.equal(got.x.cpu(), want.x)


def test_from_instances_groups_by_bag_id():
    x = np.arange(12, dtype=float).reshape(6, 2)
    bags, ids = Bags.from_instances(x, ["b", "a", "b", "c", "a", "b"])
    assert ids.tolist() == ["a", "b", "c"]
    assert bags.sizes.tolist() == [2, 3, 1]
    np.testing.assert_array_equal(bags.x[:2].numpy(), x[[1, 4]])


def test_chunks_cover_all_bags_within_budget():
    bags = Bags.from_list(ragged_bags(n_bags=40, max_size=12))
    ranges = list(bags.chunks(max_instances=20))
    assert ranges[0][0] == 0 and ranges[-1][1] == 40
    assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
    for lo, hi in ranges:
        assert hi - lo == 1 or int(bags.offsets[hi] - bags.offsets[lo]) <= 20


def test_empty_bag_and_non_finite_values_are_rejected():
    with pytest.raises(BagError, match="no instances"):
        Bags.from_list([np.ones((2, 3)), np.ones((0, 3))])
    bad = np.ones((3, 2))
    bad[1, 1] = np.nan
    with pytest.raises(BagError, match="NaN or Inf .*instance 1, feature 1"):
        Bags.from_list([bad])


def test_single_instance_bags_are_allowed():
    bags = Bags.from_list([np.ones((1, 3)), 2 * np.ones((1, 3))])
    np.testing.assert_array_equal(bags.mean_pool().numpy(), [[1, 1, 1], [2, 2, 2]])


def test_per_bag_operations_take_the_dense_path_for_equal_sizes_and_agree_with_the_segment_ops():
    from mixmil_workflow.models.segment import segment_argmax, segment_max, segment_softmax, segment_sum

    rng = np.random.default_rng(5)
    equal = Bags.from_dense(rng.standard_normal((7, 6, 4)), dtype=torch.float64)
    ragged = Bags.from_list([rng.standard_normal((n, 4)) for n in (3, 6, 1, 5)], dtype=torch.float64)
    assert equal.common_size == 6 and ragged.common_size == 0 and not ragged.is_equal_size
    for bags in (equal, ragged):
        values = torch.as_tensor(rng.standard_normal((bags.n_instances, 2, 3)))
        values[1] = values[0]  # a tie inside the first bag: the first of the tied rows is the argmax
        torch.testing.assert_close(bags.softmax(values), segment_softmax(values, bags.offsets, bags.index))
        torch.testing.assert_close(bags.sum(values), segment_sum(values, bags.offsets, bags.index))
        expected = segment_argmax(values, bags.offsets, bags.index)
        assert torch.equal(bags.argmax(values), expected)
        # The argmax rows hold each bag's maximum, and lie inside their bag.
        chosen = values.gather(0, expected)
        torch.testing.assert_close(chosen, segment_max(values, bags.offsets))
        first, last = bags.offsets[:-1].view(-1, 1, 1), bags.offsets[1:].view(-1, 1, 1)
        assert bool(((expected >= first) & (expected < last)).all())
    # A subset of equal-size bags knows its size without recounting; the dense view still checks.
    assert equal.subset([4, 0]).common_size == 6
    with pytest.raises(BagError, match="differ in size"):
        ragged.dense()
