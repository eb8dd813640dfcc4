"""The paper's simulation (Section 4.2), generated as the authors' reference does.

1. X ~ N(0, 1) for (n_train + n_test) bags x I instances x Q features; each feature standardised over
   all instances and divided by sqrt(Q).
2. Per output p: gamma ~ N(0, I_Q), rescaled so Var(X gamma) = v_gamma over all instances;
   true weights w = softmax within each bag.
3. beta ~ N(0, I_Q) normalised to RMS 1; u_n = sum_i w_ni x_ni^T beta, standardised over bags and scaled
   to variance v_beta.
4. Labels y ~ Binomial(n_trials, sigmoid(intercept + u)).
5. A random n_test bags form the test set; embeddings re-standardised with training statistics
   ((x - mean) / (sd sqrt(Q)) per feature, over training instances).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only where bags are built: simulating and evaluating run without it
    from mixmil_workflow.bags import Bags


@dataclass(frozen=True)
class SimulationParams:
    n_train: int = 1000
    n_test: int = 200
    n_instances: int = 50
    n_features: int = 30
    v_gamma: float = 0.8
    v_beta: float = 0.5
    intercept: float = -1.0
    n_trials: int = 2
    n_outputs: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SimulatedData:
    x_train: np.ndarray  # (n_train, I, Q) float32
    x_test: np.ndarray
    y_train: np.ndarray  # (n_train, P)
    y_test: np.ndarray
    u_train: np.ndarray  # true bag effects (n_train, P)
    u_test: np.ndarray
    w_train: np.ndarray  # true instance weights (n_train, I, P)
    w_test: np.ndarray

    def bags(self, split: str) -> Bags:
        from mixmil_workflow.bags import Bags

        return Bags.from_dense(getattr(self, f"x_{split}"))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return dict(vars(self))

    @classmethod
    def from_arrays(cls, arrays) -> SimulatedData:
        return cls(**{k: np.asarray(arrays[k]) for k in cls.__dataclass_fields__})


def _softmax_bags(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


def simulate(params: SimulationParams, seed: int) -> SimulatedData:
    rng = np.random.default_rng(seed)
    n_tot = params.n_train + params.n_test
    n_i, q, p = params.n_instances, params.n_features, params.n_outputs
    flat = rng.standard_normal((n_tot * n_i, q))
    flat = (flat - flat.mean(0)) / (flat.std(0) * np.sqrt(q))
    x = flat.reshape(n_tot, n_i, q)

    gamma = rng.standard_normal((q, p))
    gamma *= np.sqrt(params.v_gamma / (flat @ gamma).var(0))
    w = _softmax_bags(x @ gamma)  # (N, I, P)

    beta = rng.standard_normal((q, p))
    beta /= np.sqrt((beta**2).mean(0))
    u = np.einsum("nip,nip->np", w, x @ beta)
    u = (u - u.mean(0)) / u.std(0) * np.sqrt(params.v_beta)
    prob = 1.0 / (1.0 + np.exp(-(params.intercept + u)))
    y = rng.binomial(params.n_trials, prob).astype(np.float64)

    test = np.zeros(n_tot, dtype=bool)
    test[rng.choice(n_tot, params.n_test, replace=False)] = True
    train_flat = x[~test].reshape(-1, q)
    mean, sd = train_flat.mean(0), train_flat.std(0) * np.sqrt(q)
    x = ((x - mean) / sd).astype(np.float32)
    return SimulatedData(x[~test], x[test], y[~test], y[test], u[~test], u[test], w[~test], w[test])
