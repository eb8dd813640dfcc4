"""MixMIL reproduction: models, simulation, metrics and plots behind the Snakemake workflow.

Top-level names are imported lazily so that light modules (the scenario grid used when Snakemake
parses the workflow) do not pay for importing torch.
"""

from __future__ import annotations

from mixmil_workflow.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
