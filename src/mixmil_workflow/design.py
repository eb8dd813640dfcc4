"""Bag-level fixed-effect design matrices (intercept + covariates)."""

from __future__ import annotations

import numpy as np


class CovariateError(ValueError):
    """Covariates that cannot form a valid fixed-effect design."""


def design_matrix(
    covariates: np.ndarray | None, n_bags: int, names: list[str] | None = None, fitting: bool = True
) -> np.ndarray:
    """Intercept column followed by the covariates, shape (n_bags, 1 + K).

    When ``fitting``, a constant covariate would duplicate the intercept and make the fixed effects
    unidentifiable, so it is rejected with its name rather than silently dropped (at prediction time a
    few bags may well share a value).
    """
    intercept = np.ones((n_bags, 1))
    if covariates is None:
        return intercept
    cov = np.asarray(covariates, dtype=np.float64)
    if cov.ndim == 1:
        cov = cov[:, None]
    if cov.ndim != 2 or cov.shape[0] != n_bags:
        raise CovariateError(f"covariates must be (bags, K) with {n_bags} rows, got shape {cov.shape}")
    if not np.isfinite(cov).all():
        raise CovariateError("covariates contain NaN or Inf; impute them or drop those bags")
    names = names or [f"covariate {k}" for k in range(cov.shape[1])]
    constant = [names[k] for k in range(cov.shape[1]) if np.ptp(cov[:, k]) == 0]
    if fitting and constant:
        raise CovariateError(
            f"covariates {constant} are constant over the bags; the intercept already models a constant, remove them"
        )
    return np.hstack([intercept, cov])
