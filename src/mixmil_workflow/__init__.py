"""MixMIL reproduction: models, simulation, metrics and plots behind the Snakemake workflow.

Top-level names are imported lazily so that light modules (the scenario grid used when Snakemake
parses the workflow) do not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Bags": "bags",
    "BagError": "bags",
    "GLMM": "models.glmm",
    "MixMIL": "models.mixmil",
    "MixMILConfig": "models.mixmil",
    "Prediction": "models.base",
    "InstanceWeights": "models.base",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
