from __future__ import annotations

import numpy as np
import pytest
import torch

from mixmil_workflow.simulate.paper import SimulationParams, simulate


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_sim():
    """A small default-like simulation shared by tests (P = 2 outputs)."""
    return simulate(SimulationParams(n_train=300, n_test=100, n_instances=20, n_features=10, n_outputs=2), seed=3)


def ragged_bags(seed: int = 0, n_bags: int = 7, q: int = 4, max_size: int = 9):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, max_size)), q)) for _ in range(n_bags)]
