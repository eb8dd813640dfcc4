"""The shared engine of every study: fit a model built from the registry (``models.registry.build``) on a
split, timed; the extra arguments its type needs; its parameter counts.

Every model implements :class:`mixmil_workflow.models.base.MILModel`, so nothing here (nor in any study)
asks which class a model is; what differs between types is read from the registry (e.g. whether fit and
predict need the instances' grid positions).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from mixmil_workflow.models.registry import spec_type

__all__ = ["context", "fit_timed", "parameter_counts"]


def context(spec: Mapping, coords: np.ndarray | None = None) -> dict:
    """The extra keyword arguments a model of this config entry takes in fit / predict / instance_scores."""
    if spec_type(spec).needs_coords:
        if coords is None:
            raise ValueError(f"model type {spec['type']!r} needs the instances' grid coordinates (coords)")
        return {"coords": coords}
    return {}


def fit_timed(model, bags, y, covariates: np.ndarray | None = None, *, save_to=None, **extra) -> float:
    """Fit ``model`` and return the wall-clock seconds it took (the save not counted); with ``save_to`` the
    fitted model is saved there (config ``save_models``)."""
    start = time.perf_counter()
    model.fit(bags, y, covariates, **extra)
    seconds = time.perf_counter() - start
    if save_to is not None:
        model.save(save_to)
    return seconds


def parameter_counts(model) -> np.ndarray:
    """(likelihood / network parameters, variational parameters); zeros where not meaningful (trees)."""
    counts = model.n_parameters()
    return np.array([counts["likelihood"], counts["variational"]])
