"""The one training loop of the torch models: history, timing, the non-finite check, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.registry import build
from mixmil_workflow.models.training import PatienceStopping, train_epochs


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
