from __future__ import annotations

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
