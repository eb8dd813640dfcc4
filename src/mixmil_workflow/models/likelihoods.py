"""Bag-label likelihoods on the logit (linear-predictor) scale.

Every likelihood takes linear predictors ``eta`` of shape (bags, P, samples) and labels for the same
bags, and returns log p(y | eta) summed over the P outputs, shape (bags, samples). P is the number of
independent traits (binomial, Bernoulli, Gaussian) or the number of classes (categorical, where the
outputs are coupled through the softmax).

Binomial and Bernoulli likelihoods built with ``allow_missing=True`` accept NaN for a label that was not
measured (sparse multi-task labels): a missing entry contributes nothing to log p(y | eta), so each output
is fitted on its own observed bags.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LIKELIHOODS = ("binomial", "bernoulli", "categorical", "gaussian")


class LabelError(ValueError):
    """Labels outside the support of the chosen likelihood."""


class Likelihood(nn.Module):
    name: str = ""

    def prepare_labels(self, y) -> torch.Tensor:
        """Check labels against the support and return them as a tensor of the right dtype/shape."""
        raise NotImplementedError

    def n_outputs(self, y: torch.Tensor) -> int:
        return y.shape[1]

    def log_prob(self, eta: torch.Tensor, y: torch.Tensor, constant: bool = True) -> torch.Tensor:
        """log p(y | eta) summed over outputs, (bags, samples); ``constant=False`` drops terms that
        depend on the labels only (see :meth:`log_constant`)."""
        raise NotImplementedError

    def log_constant(self, y: torch.Tensor) -> torch.Tensor:
        """The label-only part of log p(y | eta) per bag, shape (bags,)."""
        return torch.zeros(len(y), dtype=torch.float64)

    def nll_and_grad(self, eta: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list]:
        """The mean negative log-likelihood over bags and samples without the label-only constant, its
        gradient with respect to ``eta`` (bags, P, samples) and with respect to this likelihood's own
        parameters (in ``parameters()`` order). Through autograd here; likelihoods with a short closed
        form override it (a training step's autograd call costs more than its arithmetic)."""
        eta = eta.detach().requires_grad_(True)
        params = list(self.parameters())
        with torch.enable_grad():
            nll = -self.log_prob(eta, y, constant=False).mean()
            grad_eta, *grads = torch.autograd.grad(nll, [eta, *params])
        return nll.detach(), grad_eta, grads

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        """Expected label given the linear predictor."""
        raise NotImplementedError


def _as_2d_float(y, name: str) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(y, dtype=np.float64))
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise LabelError(f"{name} labels must be (bags,) or (bags, outputs), got shape {tuple(y.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise LabelError(
            f"{name} labels contain NaN or Inf; drop those bags or impute the labels (binomial/Bernoulli models "
            "mask missing labels with missing_labels=True)"
        )
    return y


class Binomial(Likelihood):
    """y successes out of ``n_trials`` (genotype dosage: n_trials = 2); NaN = missing when
    ``allow_missing``."""

    def __init__(self, n_trials: int = 2, allow_missing: bool = False):
        super().__init__()
        if int(n_trials) < 1:
            raise ValueError(f"n_trials must be >= 1, got {n_trials}")
        self.n_trials = int(n_trials)
        self.allow_missing = bool(allow_missing)
        self.name = "binomial" if self.n_trials != 1 else "bernoulli"

    def prepare_labels(self, y) -> torch.Tensor:
        if self.allow_missing:
            raw = torch.as_tensor(np.asarray(y, dtype=np.float64))
            missing = torch.isnan(raw)
            y = _as_2d_float(torch.where(missing, 0.0, raw), self.name)
            missing = missing.reshape(y.shape)
        else:
            y, missing = _as_2d_float(y, self.name), None
        bad = (y < 0) | (y > self.n_trials) | (y != torch.round(y))
        if bool(bad.any()):
            value = y[bad][0].item()
            raise LabelError(
                f"{self.name} labels must be integers in 0..{self.n_trials}"
                f"{' or NaN (missing)' if self.allow_missing else ''}; found {value} "
                f"(use likelihood='gaussian' for continuous labels)"
            )
        if missing is not None:
            empty = torch.nonzero((~missing).sum(0) == 0).flatten().tolist()
            if empty:
                raise LabelError(f"outputs {empty[:5]} have no observed label; drop those columns")
            y = y.masked_fill(missing, float("nan"))
        return y

    def _observed(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Labels with missing entries set to 0, and the observed mask (None without missing labels)."""
        if not self.allow_missing:
            return y, None
        observed = ~torch.isnan(y)
        return torch.where(observed, y, torch.zeros((), dtype=y.dtype, device=y.device)), observed

    def log_prob(self, eta: torch.Tensor, y: torch.Tensor, constant: bool = True) -> torch.Tensor:
        n = self.n_trials
        y, observed = self._observed(y)
        # y log s(eta) + (n - y) log s(-eta), using log s(-eta) = log s(eta) - eta (one logsigmoid).
        terms = n * F.logsigmoid(eta) - (n - y.to(eta.dtype)).unsqueeze(-1) * eta
        if observed is not None:
            terms = terms * observed.to(eta.dtype).unsqueeze(-1)
        lp = terms.sum(1)
        return lp + self.log_constant(y).to(eta.dtype).unsqueeze(-1) if constant else lp

    def nll_and_grad(self, eta: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list]:
        """d log p / d eta = y - n sigmoid(eta) per observed entry (a third of autograd's time)."""
        nll = -self.log_prob(eta, y, constant=False).mean()
        y, observed = self._observed(y)
        grad = torch.sigmoid(eta).mul_(self.n_trials).sub_(y.to(eta.dtype).unsqueeze(-1))
        if observed is not None:
            grad.mul_(observed.to(eta.dtype).unsqueeze(-1))
        return nll, grad.div_(eta.shape[0] * eta.shape[2]), []

    def log_constant(self, y: torch.Tensor) -> torch.Tensor:
        y, observed = self._observed(y.double())
        n = self.n_trials
        terms = math.lgamma(n + 1) - torch.lgamma(y + 1) - torch.lgamma(n - y + 1)
        return (terms if observed is None else terms * observed).sum(1)

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return self.n_trials * torch.sigmoid(eta)


class Categorical(Likelihood):
    """One of C classes; P = C outputs with class-specific effects (softmax link)."""

    name = "categorical"

    def __init__(self, n_classes: int | None = None):
        super().__init__()
        self.n_classes = n_classes

    def prepare_labels(self, y) -> torch.Tensor:
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise LabelError(f"categorical labels must be one class index per bag, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or np.any(arr != np.round(arr)) or np.any(arr < 0):
            raise LabelError("categorical labels must be non-negative integer class indices (encode names first)")
        arr = arr.astype(np.int64)
        if self.n_classes is not None and arr.max() >= self.n_classes:
            raise LabelError(f"class index {arr.max()} out of range for {self.n_classes} classes")
        return torch.as_tensor(arr)

    def n_outputs(self, y: torch.Tensor) -> int:
        if self.n_classes is None:
            self.n_classes = int(y.max()) + 1
        if self.n_classes < 2:
            raise LabelError("categorical likelihood needs at least two classes")
        return self.n_classes

    def log_prob(self, eta: torch.Tensor, y: torch.Tensor, constant: bool = True) -> torch.Tensor:
        logp = torch.log_softmax(eta, dim=1)  # (B, C, S)
        idx = y.view(-1, 1, 1).expand(-1, 1, eta.shape[2])
        return logp.gather(1, idx).squeeze(1)

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.softmax(eta, dim=1)


class Gaussian(Likelihood):
    """Continuous labels with a learned residual standard deviation per output."""

    name = "gaussian"

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1))

    def initialise(self, n_outputs: int, residual_sd: torch.Tensor | None = None) -> None:
        init = torch.zeros(n_outputs) if residual_sd is None else torch.log(residual_sd.clamp_min(1e-6))
        self.log_scale = nn.Parameter(init.to(torch.float32))

    def prepare_labels(self, y) -> torch.Tensor:
        return _as_2d_float(y, self.name)

    def log_prob(self, eta: torch.Tensor, y: torch.Tensor, constant: bool = True) -> torch.Tensor:
        log_scale = self.log_scale.view(1, -1, 1)
        z = (y.to(eta.dtype).unsqueeze(-1) - eta) * torch.exp(-log_scale)
        lp = (-0.5 * z.square() - log_scale).sum(1)
        return lp + self.log_constant(y).to(eta.dtype).unsqueeze(-1) if constant else lp

    def log_constant(self, y: torch.Tensor) -> torch.Tensor:
        return torch.full((len(y),), -0.5 * y.shape[1] * math.log(2 * math.pi), dtype=torch.float64)

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return eta


def make_likelihood(
    name: str, n_trials: int | None = None, n_classes: int | None = None, allow_missing: bool = False
) -> Likelihood:
    if allow_missing and name not in ("binomial", "bernoulli"):
        raise ValueError(
            f"missing labels (NaN) are supported for the binomial and Bernoulli likelihoods, not {name!r}; "
            "drop the bags without a label"
        )
    if name == "binomial":
        return Binomial(2 if n_trials is None else n_trials, allow_missing)
    if name == "bernoulli":
        return Binomial(1, allow_missing)
    if name == "categorical":
        return Categorical(n_classes)
    if name == "gaussian":
        return Gaussian()
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {name!r}")
