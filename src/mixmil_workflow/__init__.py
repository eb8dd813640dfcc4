"""MixMIL reproduction: models, simulation, metrics and plots behind the Snakemake workflow."""

from .bags import BagError, Bags
from .glmm import GLMM
from .mixmil import InstanceWeights, MixMIL, MixMILConfig, Prediction

__version__ = "0.1.0"

__all__ = ["GLMM", "BagError", "Bags", "InstanceWeights", "MixMIL", "MixMILConfig", "Prediction", "__version__"]
