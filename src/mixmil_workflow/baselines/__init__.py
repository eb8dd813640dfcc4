"""Baseline MIL models behind one interface (MixMIL and the GLMM live in the parent package)."""

from .additive_mil import AdditiveMIL, AdditiveMILConfig
from .attention_mil import AttentionMIL, AttentionMILConfig
from .base import MILModel, regress_out_covariates
from .bayes_mil import BayesMIL, BayesMILConfig
from .dsmil import DSMIL, DSMILConfig
from .momil import MoMIL, MoMILConfig
from .trees import TreeMIL, TreeMILConfig, pool_bags

__all__ = [
    "DSMIL",
    "AdditiveMIL",
    "AdditiveMILConfig",
    "AttentionMIL",
    "AttentionMILConfig",
    "BayesMIL",
    "BayesMILConfig",
    "DSMILConfig",
    "MILModel",
    "MoMIL",
    "MoMILConfig",
    "TreeMIL",
    "TreeMILConfig",
    "pool_bags",
    "regress_out_covariates",
]
