"""GLMM on mean-pooled bag embeddings (the paper's GLMM baseline and MixMIL's initialiser).

Model, per output p: eta_bp = F_b alpha_p + (xbar_b - c)^T beta_p with beta_p ~ N(0, s_p^2 I_Q), i.e. one
shared variance component over the Q embedding dimensions, x̄ the mean instance embedding and c its
training mean. Fitted per likelihood as the paper's authors do:

* binomial / Bernoulli: statsmodels ``BinomialBayesMixedGLM.fit_vb`` on Gower-normalised bag means;
  n trials are expanded into n Bernoulli rows because statsmodels' model is Bernoulli only;
* categorical: L2 logistic regression with a cross-validated penalty (scikit-learn), covariates
  regressed out of the bag means first;
* Gaussian: the exact linear mixed model, maximum likelihood over the variance ratio. Written here
  because statsmodels' MixedLM needs a grouping structure, and a single shared variance component over
  Q columns is a few lines of linear algebra with an SVD.

All coefficients are stored on the scale of the raw mean embeddings, so predictions need only c.

``instance_level=True`` is the instance-level variant of the paper's Table E.1: every instance is a row
with its bag's label (and covariates), and a bag's prediction is the mean of its instances' linear
predictors, which for a linear predictor is the same model evaluated at the bag mean.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from mixmil_workflow.bags import Bags
from mixmil_workflow.design import design_matrix
from mixmil_workflow.models.base import MILModel, Prediction
from mixmil_workflow.models.likelihoods import Binomial, Categorical, Gaussian, make_likelihood
from mixmil_workflow.models.options import GLMMConfig
from mixmil_workflow.models.persistence import as_array, load_model, save_model

FORMAT = "mixmil_workflow.GLMM/1"
POOLINGS = ("mean", "instance")


@dataclass
class GLMMParameters:
    alpha: np.ndarray  # (K, P) fixed effects, intercept first
    beta_mean: np.ndarray  # (Q, P) posterior mean of the random effects (raw mean-embedding scale)
    beta_sd: np.ndarray  # (Q, P) posterior sd of the random effects
    center: np.ndarray  # (Q,) training mean of the bag means
    residual_sd: np.ndarray | None = None  # (P,) Gaussian only


def gower_factor(x: np.ndarray) -> float:
    """sqrt(trace of the sample covariance): after dividing, the kernel X X^T has unit mean diagonal.

    1 when the bag means do not vary beyond float32 rounding (e.g. every bag centred, or a single bag):
    dividing by ~0 would blow the random effects up to ~1e7 (or NaN). The random effects are then not
    identified by the means and stay near their prior; MixMIL, started here, learns from the instances."""
    factor = float(np.sqrt(x.var(axis=0, ddof=1).sum())) if x.shape[0] > 1 else 0.0
    tolerance = 10 * np.finfo(np.float32).eps * max(1.0, float(np.abs(x).max(initial=0.0)))
    if not np.isfinite(factor) or factor <= tolerance:
        warnings.warn(
            "GLMM: the bag mean embeddings do not vary between bags; the random effects are not identified "
            "by the means and stay near their prior",
            stacklevel=2,
        )
        return 1.0
    return factor


class GLMM(MILModel):
    """Generalised linear mixed model on mean-pooled embeddings, behind the common model interface."""

    config_class = GLMMConfig

    def __init__(
        self,
        likelihood: str = "binomial",
        n_trials: int | None = None,
        seed: int = 0,
        instance_level: bool = False,
        missing_labels: bool = False,
        *,
        pooling: str | None = None,
        n_classes: int | None = None,
    ):
        if pooling is None:
            pooling = "instance" if instance_level else "mean"
        if pooling not in POOLINGS:
            raise ValueError(f"a GLMM pools by 'mean' or 'instance' (Table E.1), not {pooling!r}")
        self.config = GLMMConfig(likelihood, n_trials, n_classes, seed, pooling, missing_labels)
        self.likelihood = make_likelihood(likelihood, n_trials, n_classes, allow_missing=missing_labels)
        self.params: GLMMParameters | None = None
        self.history = self.epoch_seconds = np.zeros(0)  # fitted in closed form / by VB, not by epochs

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def instance_level(self) -> bool:
        return self.config.pooling == "instance"

    def fit(self, bags: Bags | np.ndarray, y, covariates: np.ndarray | None = None) -> GLMM:
        xm = _bag_means(bags)
        fe = design_matrix(covariates, xm.shape[0])
        yt = self.likelihood.prepare_labels(y).numpy()
        if self.instance_level:
            if not isinstance(bags, Bags):
                raise TypeError("an instance-level GLMM needs Bags (the instances), not bag means")
            bag_of = bags.index.cpu().numpy()
            xm, fe, yt = bags.x.double().cpu().numpy(), fe[bag_of], yt[bag_of]
        if isinstance(self.likelihood, Binomial):
            self.params = _fit_binomial(xm, fe, yt, self.likelihood.n_trials, self.seed)
        elif isinstance(self.likelihood, Categorical):
            self.likelihood.n_outputs(self.likelihood.prepare_labels(y))
            self.config.n_classes = self.likelihood.n_classes
            self.params = _fit_categorical(xm, fe, yt, self.likelihood.n_classes, self.seed)
        elif isinstance(self.likelihood, Gaussian):
            self.params = _fit_gaussian(xm, fe, yt)
        return self

    def _check_fitted(self) -> GLMMParameters:
        if self.params is None:
            raise RuntimeError("GLMM is not fitted; call fit() or load() first")
        return self.params

    def bag_effect(self, bags: Bags | np.ndarray) -> np.ndarray:
        """(xbar - c) beta, shape (bags, P): the random-effect part of the linear predictor."""
        params = self._check_fitted()
        return (_bag_means(bags) - params.center) @ params.beta_mean

    def linear_predictor(self, bags: Bags | np.ndarray, covariates: np.ndarray | None = None) -> np.ndarray:
        """F alpha + (xbar - c) beta, shape (bags, P)."""
        params = self._check_fitted()
        xm = _bag_means(bags)
        fe = design_matrix(covariates, xm.shape[0], fitting=False)
        return fe @ params.alpha + (xm - params.center) @ params.beta_mean

    def predict(self, bags: Bags | np.ndarray, covariates: np.ndarray | None = None) -> Prediction:
        """Bag effect, linear predictor and expected label (binomial: n * p; categorical: class
        probabilities; Gaussian: mean)."""
        import torch

        eta = self.linear_predictor(bags, covariates)
        mean = self.likelihood.mean(torch.as_tensor(eta).unsqueeze(-1)).squeeze(-1).numpy()
        return Prediction(self.bag_effect(bags), eta, mean)

    def n_parameters(self) -> dict[str, int]:
        """Fixed and random effects per output (K + Q) and the Q means and sds of the random effects."""
        params = self._check_fitted()
        q, p = params.beta_mean.shape
        return {"likelihood": p * (q + params.alpha.shape[0]), "variational": 2 * q * p}

    def save(self, path: str | Path) -> None:
        params = self._check_fitted()
        save_model(path, FORMAT, self.config, params={f.name: getattr(params, f.name) for f in fields(params)})

    @classmethod
    def load(cls, path: str | Path) -> GLMM:
        payload = load_model(path, FORMAT, "GLMM")
        model = cls(**{k: v for k, v in payload["config"].items()})
        model.params = GLMMParameters(**{k: as_array(v) for k, v in payload["params"].items()})
        return model


def _bag_means(bags: Bags | np.ndarray) -> np.ndarray:
    if isinstance(bags, Bags):
        return bags.mean_pool().double().cpu().numpy()
    return np.asarray(bags, dtype=np.float64)


def _fit_binomial(xm: np.ndarray, fe: np.ndarray, y: np.ndarray, n_trials: int, seed: int) -> GLMMParameters:
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    center = xm.mean(0)
    scale = gower_factor(xm)
    z = (xm - center) / scale
    n_bags, q = z.shape
    # Row t of bag b is a success when t < y_b: n Bernoulli rows carry exactly the Binomial(n) likelihood.
    trial = np.arange(n_trials).repeat(n_bags)
    z_rows, fe_rows = np.tile(z, (n_trials, 1)), np.tile(fe, (n_trials, 1))
    alpha, b_mean, b_sd = [], [], []
    for p in range(y.shape[1]):
        observed = np.tile(~np.isnan(y[:, p]), n_trials)  # a missing label (NaN) leaves its bag out
        success = (trial < np.tile(y[:, p], n_trials)).astype(np.float64)[observed]
        model = BinomialBayesMixedGLM(success, fe_rows[observed], z_rows[observed], np.zeros(q, dtype=int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # fit_vb draws random starting values; without a seed it uses fresh OS entropy.
            result = model.fit_vb(rng=np.random.default_rng([seed, p]))
        alpha.append(result.fe_mean)
        b_mean.append(result.vc_mean / scale)
        b_sd.append(result.vc_sd / scale)
    return GLMMParameters(np.stack(alpha, 1), np.stack(b_mean, 1), np.stack(b_sd, 1), center)


def _fit_categorical(xm: np.ndarray, fe: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> GLMMParameters:
    from sklearn.linear_model import LogisticRegressionCV

    center = xm.mean(0)
    fe_pinv = np.linalg.pinv(fe)
    coef_fe = fe_pinv @ xm  # (K, Q): covariate part of the bag means
    resid = xm - fe @ coef_fe
    r_mean, r_sd = resid.mean(0), resid.std(0) * np.sqrt(xm.shape[1])
    r_sd[r_sd == 0] = 1.0
    clf = LogisticRegressionCV(
        Cs=10,
        l1_ratios=(0.0,),
        solver="lbfgs",
        max_iter=1000,
        scoring="neg_log_loss",  # a probabilistic initialiser: select the penalty by log loss
        use_legacy_attributes=False,
        random_state=seed,
    )
    clf.fit((resid - r_mean) / r_sd, y)
    if len(clf.classes_) != n_classes:
        raise ValueError(f"training labels contain {len(clf.classes_)} of {n_classes} classes; every class needs bags")
    coef, intercept = clf.coef_, clf.intercept_
    if n_classes == 2:  # scikit-learn fits two classes as one logit; as softmax logits: (-eta / 2, eta / 2)
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    beta = coef.T / r_sd[:, None]  # (Q, C) on the raw scale
    # eta = c + (xm - F coef_fe - r_mean) beta = F alpha + (xm - center) beta, with the constants moved into
    # the intercept column of F (fe_pinv @ 1 is the intercept indicator because F contains an intercept).
    const = intercept + (center - r_mean) @ beta
    alpha = np.outer(fe_pinv @ np.ones(len(fe)), const) - coef_fe @ beta
    sd = np.sqrt(0.1 * (beta**2).mean(0, keepdims=True)) * np.ones_like(beta)
    return GLMMParameters(alpha, beta, sd, center)


def _fit_gaussian(xm: np.ndarray, fe: np.ndarray, y: np.ndarray) -> GLMMParameters:
    center = xm.mean(0)
    scale = gower_factor(xm)
    z = (xm - center) / scale
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    s2 = s**2
    n = z.shape[0]

    def h_inv(v: np.ndarray, delta: float) -> np.ndarray:
        # (Z Z^T + delta I)^-1 v via the thin SVD of Z.
        uv = u.T @ v
        return u @ (uv / (s2 + delta)[:, None]) + (v - u @ uv) / delta

    alpha, b_mean, b_sd, res_sd = [], [], [], []
    for p in range(y.shape[1]):
        yp = y[:, p : p + 1]

        def profile(log_delta: float, yp: np.ndarray = yp) -> tuple[float, np.ndarray, float]:
            delta = float(np.exp(log_delta))
            hf, hy = h_inv(fe, delta), h_inv(yp, delta)
            a = np.linalg.solve(fe.T @ hf, fe.T @ hy)
            r = yp - fe @ a
            var_b = float((r * h_inv(r, delta)).sum() / n)
            logdet = np.log(s2 + delta).sum() + (n - len(s2)) * log_delta
            return 0.5 * (n * np.log(max(var_b, 1e-300)) + logdet), a, var_b

        best = minimize_scalar(lambda v: profile(v)[0], bounds=(-12.0, 12.0), method="bounded")
        _, a, var_b = profile(best.x)
        delta = float(np.exp(best.x))
        r = yp - fe @ a
        post_cov = var_b * delta * np.linalg.inv(z.T @ z + delta * np.eye(z.shape[1]))
        alpha.append(a[:, 0])
        b_mean.append((z.T @ h_inv(r, delta))[:, 0] / scale)
        b_sd.append(np.sqrt(np.diag(post_cov)) / scale)
        res_sd.append(np.sqrt(var_b * delta))
    return GLMMParameters(np.stack(alpha, 1), np.stack(b_mean, 1), np.stack(b_sd, 1), center, np.array(res_sd))
