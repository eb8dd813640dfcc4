"""Every model of the comparison behind one interface (:class:`~mixmil_workflow.models.base.MILModel`),
the registry that maps a config ``type`` to its class and capabilities, and the shared training loop.

Names are imported lazily so that the registry can be read without importing torch.
"""

from __future__ import annotations

from mixmil_workflow.lazy import lazy_getattr

_EXPORTS = {
    "MILModel": "base",
    "Prediction": "base",
    "InstanceWeights": "base",
    "regress_out_covariates": "base",
    "MixMIL": "mixmil",
    "MixMILConfig": "mixmil",
    "GLMM": "glmm",
    "AdditiveMIL": "additive_mil",
    "AdditiveMILConfig": "additive_mil",
    "AttentionMIL": "attention_mil",
    "AttentionMILConfig": "attention_mil",
    "BayesMIL": "bayes_mil",
    "BayesMILConfig": "bayes_mil",
    "DSMIL": "dsmil",
    "DSMILConfig": "dsmil",
    "MoMIL": "momil",
    "MoMILConfig": "momil",
    "SMMILe": "smmile",
    "SMMILeConfig": "smmile",
    "TreeMIL": "trees",
    "TreeMILConfig": "trees",
    "pool_bags": "trees",
    "build": "registry",
    "load": "persistence",
    "model_type": "registry",
    "model_types": "registry",
    "register": "registry",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
