"""The interface every MIL model of the comparison implements, and shared helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bags import Bags
from ..design import design_matrix
from ..io import atomic_path
from ..mixmil import Prediction


class MILModel(ABC):
    """fit on bags (+ covariates) -> bag predictions, instance scores where the model defines them."""

    @abstractmethod
    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> MILModel: ...

    @abstractmethod
    def predict(self, bags: Bags, covariates: np.ndarray | None = None) -> Prediction:
        """``bag_effect`` / ``linear_predictor``: logits (bags, P); ``mean``: expected label."""

    @abstractmethod
    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None) -> np.ndarray | None:
        """(instances, P) scores for instance retrieval, or None when the model has none."""

    @abstractmethod
    def save(self, path: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> MILModel: ...


def regress_out_covariates(
    bags: Bags, covariates: np.ndarray | None, coef: np.ndarray | None = None, *, fitting: bool = True
) -> tuple[Bags, np.ndarray | None]:
    """Remove the covariate part of the embeddings, as the paper does for the baselines (Appendix D.4).

    The bag means are regressed on [1, covariates] over the training bags (``fitting``: fit here;
    otherwise reuse the training coefficients ``coef``) and each instance loses its bag's fitted value, so
    the bag means become the training residuals. Returns the adjusted bags and the coefficients (K+1, Q).
    Without covariates nothing is regressed out and the bags come back as they are (no copy: at
    Camelyon16 scale a copy of the instance matrix is gigabytes); the coefficients are then None.
    """
    if not fitting and (coef is None) != (covariates is None):
        raise ValueError(
            "the model was fitted " + ("without" if coef is None else "with") + " covariates; pass the same "
            "kind of covariates to predict (" + ("none" if coef is None else f"{coef.shape[0] - 1} columns") + ")"
        )
    if covariates is None:
        return bags, None
    fe = design_matrix(covariates, bags.n_bags, fitting=fitting)
    if fitting:
        coef, *_ = np.linalg.lstsq(fe, bags.mean_pool().double().cpu().numpy(), rcond=None)
    shift = torch.as_tensor(fe @ coef, dtype=bags.x.dtype, device=bags.x.device)
    return Bags(bags.x - shift.index_select(0, bags.index), bags.offsets), coef


def save_network(
    path: str | Path, format: str, config, net: torch.nn.Module | None, covariate_coef, **extra: Any
) -> None:
    """Write a fitted network model: format tag, config, covariate coefficients, CPU state dict and the
    model's own ``extra`` entries, atomically (a torch file readable with ``weights_only=True``)."""
    if net is None:
        raise RuntimeError("model is not fitted; nothing to save")
    payload = {
        "format": format,
        "config": asdict(config),
        **extra,
        "covariate_coef": None if covariate_coef is None else torch.as_tensor(covariate_coef),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_network(path: str | Path, format: str, what: str) -> dict[str, Any]:
    """The payload :func:`save_network` wrote, after checking its format tag (``what`` names the model in
    the error); ``covariate_coef`` comes back as a NumPy array or None."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != format:
        raise ValueError(f"{path} is not a saved {what} model (format {payload.get('format')!r})")
    coef = payload["covariate_coef"]
    payload["covariate_coef"] = None if coef is None else coef.numpy()
    return payload
