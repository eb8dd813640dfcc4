"""The interface every MIL model of the comparison implements, and shared helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.design import design_matrix


@dataclass
class Prediction:
    bag_effect: np.ndarray  # (bags, P): the bag effect on the logit scale (MixMIL: E_q[u], Eq. 11)
    linear_predictor: np.ndarray  # (bags, P): F alpha + bag effect (the baselines: their bag logits)
    mean: np.ndarray  # (bags, P): expected label: expected count, class probabilities or mean


@dataclass
class InstanceWeights:
    mean: np.ndarray  # (instances, P): E_q[softmax(X gamma)]
    lower: np.ndarray  # (instances, P): lower credible bound
    upper: np.ndarray  # (instances, P): upper credible bound
    offsets: np.ndarray  # (bags + 1,): instances of bag b are rows offsets[b]:offsets[b+1]


class MILModel(ABC):
    """The one interface of every model: fit on bags (+ covariates), predict bags, score instances,
    count parameters, save and load. Built from a config entry by :func:`models.registry.build`.

    Models that need more than bags (SMMILe: each instance's grid position) take it as keyword-only
    arguments of fit / predict / instance_scores; the registry says which (``needs_coords``).
    """

    config_class: type | None = None  # the dataclass of the model's hyperparameters
    history: np.ndarray  # training loss per epoch (empty for models fitted in closed form)
    epoch_seconds: np.ndarray  # wall time per training epoch

    @abstractmethod
    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> MILModel: ...

    @abstractmethod
    def predict(self, bags: Bags, covariates: np.ndarray | None = None) -> Prediction:
        """``bag_effect`` / ``linear_predictor``: logits (bags, P); ``mean``: expected label."""

    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None) -> np.ndarray | None:
        """(instances, P) scores for instance retrieval, or None when the model has none."""
        return None

    def predict_with_instance_scores(
        self, bags: Bags, covariates: np.ndarray | None = None, **extra
    ) -> tuple[Prediction, np.ndarray | None]:
        """:meth:`predict` and :meth:`instance_scores` of the same bags. Models whose bag prediction
        already computes the instance scores (MixMIL's attention) override it to do the work once."""
        return self.predict(bags, covariates, **extra), self.instance_scores(bags, covariates, **extra)

    def n_parameters(self) -> dict[str, int]:
        """Parameter counts as the paper's Table 1: likelihood (network) and variational parameters."""
        return {"likelihood": 0, "variational": 0}

    @property
    def loss_history(self) -> np.ndarray:
        """The training loss per epoch of the last fit (empty when the model has none)."""
        return np.asarray(getattr(self, "history", np.zeros(0)), dtype=float)

    @property
    def chosen_hyperparameters(self) -> list[dict] | None:
        """Hyperparameters the fit chose per output (the trees' searches), or None."""
        return None

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
