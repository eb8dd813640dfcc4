"""Baseline MIL models behind one interface (MixMIL and the GLMM live in the parent package)."""

from .attention_mil import AttentionMIL, AttentionMILConfig
from .base import MILModel, regress_out_covariates
from .dsmil import DSMIL, DSMILConfig
from .trees import TreeMIL, TreeMILConfig, pool_bags

__all__ = [
    "DSMIL",
    "AttentionMIL",
    "AttentionMILConfig",
    "DSMILConfig",
    "MILModel",
    "TreeMIL",
    "TreeMILConfig",
    "pool_bags",
    "regress_out_covariates",
]
