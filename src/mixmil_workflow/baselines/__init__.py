"""Baseline MIL models behind one interface (issue: model zoo). MixMIL and the GLMM live in the parent package."""

from .attention_mil import AttentionMIL, AttentionMILConfig
from .base import MILModel, regress_out_covariates

__all__ = ["AttentionMIL", "AttentionMILConfig", "MILModel", "regress_out_covariates"]
