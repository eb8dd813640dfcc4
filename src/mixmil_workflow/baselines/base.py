"""The interface every MIL model of the comparison implements, and shared helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from ..bags import Bags
from ..design import design_matrix
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
    bags: Bags, covariates: np.ndarray | None, coef: np.ndarray | None = None
) -> tuple[Bags, np.ndarray]:
    """Remove the covariate part of the embeddings, as the paper does for the baselines (Appendix D.4).

    The bag means are regressed on [1, covariates] over the training bags (``coef`` None: fit here;
    otherwise reuse the training coefficients) and each instance loses its bag's fitted value, so the
    bag means become the training residuals. Returns the adjusted bags and the coefficients (K+1, Q).
    """
    fe = design_matrix(covariates, bags.n_bags, fitting=coef is None)
    if coef is None:
        coef, *_ = np.linalg.lstsq(fe, bags.mean_pool().double().cpu().numpy(), rcond=None)
    shift = torch.as_tensor(fe @ coef, dtype=bags.x.dtype, device=bags.x.device)
    return Bags(bags.x - shift.index_select(0, bags.index), bags.offsets), coef
