"""The one training loop of the torch models: history, timing, the non-finite check, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.registry import build
from mixmil_workflow.models.training import FusedAdam, PatienceStopping, train_epochs


def test_the_loop_records_every_value_of_every_epoch_in_its_dtype():
    record = train_epochs(lambda e: torch.tensor([1.0 / (e + 1), 2.0, 3.0]), 4, name="toy", progress=False)
    assert record.losses.shape == (4, 3) and record.losses.dtype == np.float32
    np.testing.assert_allclose(record.loss, [1, 1 / 2, 1 / 3, 1 / 4])
    assert record.epoch_seconds.shape == (4,) and not record.stopped_early


def test_a_non_finite_loss_stops_training_naming_the_model_and_epoch():
    with pytest.raises(FloatingPointError, match="toy loss became nan at epoch 2"):
        train_epochs(lambda e: float("nan") if e == 2 else 1.0, 5, name="toy", progress=False)


def test_patience_stopping_stops_after_patience_epochs_without_improvement():
    losses = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0]
    stop = PatienceStopping(patience=3)
    record = train_epochs(lambda e: losses[e], len(losses), name="toy", progress=False, early_stopping=stop)
    assert record.stopped_early and len(record.loss) == 6 and stop.best_epoch == 2
    # a monitored value to maximise (e.g. a validation AUC) that keeps improving never stops
    rising = PatienceStopping(patience=1, monitor=lambda epoch, loss: epoch, mode="max")
    assert not train_epochs(lambda e: 1.0, 5, name="toy", progress=False, early_stopping=rising).stopped_early
    with pytest.raises(ValueError, match="patience"):
        PatienceStopping(patience=0)


@pytest.mark.parametrize("kind", ["mixmil", "abmil", "dsmil"])
def test_every_torch_model_trains_through_the_loop(kind):
    rng = np.random.default_rng(0)
    bags = Bags(torch.as_tensor(rng.normal(size=(60, 3)), dtype=torch.float32), torch.arange(0, 61, 5))
    y = rng.integers(0, 3, size=(12, 1)).astype(float)
    model = build({"type": kind, "n_epochs": 3, "progress": False}, seed=0).fit(bags, y)
    assert model.loss_history.shape == (3,) and np.isfinite(model.loss_history).all()
    assert model.epoch_seconds.shape == (3,)


def test_a_neural_model_stops_early_through_its_hook():
    from mixmil_workflow.models.attention_mil import AttentionMIL

    class Stopping(AttentionMIL):
        def early_stopping(self):
            return lambda epoch, loss: epoch == 1

    rng = np.random.default_rng(1)
    bags = Bags(torch.as_tensor(rng.normal(size=(40, 3)), dtype=torch.float32), torch.arange(0, 41, 4))
    model = Stopping(n_epochs=10, progress=False, device="cpu").fit(bags, rng.integers(0, 3, size=(10, 1)))
    assert len(model.loss_history) == 2


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fused_adam_updates_as_torch_adam_bit_for_bit(weight_decay):
    """FusedAdam is torch.optim.Adam(fused=True) without its bookkeeping: the same parameters after every
    step, including steps where one parameter has no gradient (skipped, its step count left alone)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 3, 3)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    fused = FusedAdam(ours, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    reference = torch.optim.Adam(theirs, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay, fused=True)
    for step in range(12):
        for a, b in zip(ours, theirs, strict=True):
            grad = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = grad.clone(), grad.clone()
        if step % 4 == 3:  # a parameter without a gradient in this step
            ours[1].grad = theirs[1].grad = None
        fused.step()
        reference.step()
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b), f"step {step}"
    assert [float(s) for s in fused.steps] == [12.0, 9.0, 12.0]


def test_fused_adam_takes_one_device_and_dtype():
    with pytest.raises(ValueError, match="one device and dtype"):
        FusedAdam([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], lr=1.0)
