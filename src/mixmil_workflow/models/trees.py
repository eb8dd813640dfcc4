"""Random Forest and XGBoost on pooled bag features (paper Appendix B.2, C.1, Table E.1).

Bag features from one of three poolings of the instance embeddings: ``mean``, ``median`` or
``moments`` = [E x, E x^2, E x^3] per feature (the paper's "mean, squared mean and cubed mean"; read as
raw moments because trees are invariant to monotone transforms of a feature, so powers of the mean
would add almost nothing). Hyperparameters: a random search of 20 combinations with 5-fold CV on the
training bags, scored by Spearman correlation, over the spaces of Tables C.3 (RF) and C.4 (XGBoost);
the best combination is refitted on all training bags. Each output is a separate model.

Table C.4 writes XGBoost's learning rate as "{10^-3, ..., 10^-2, ..., 10^0}" without saying how it was
drawn. ``learning_rate_sampling="log_uniform"`` (the default) draws it log-uniformly on [1e-3, 1];
``"uniform"`` draws it uniformly (linearly) on the same interval, so most draws exceed 0.05. On the
default simulation the uniform reading gives the paper's XGBoost row of Table E.1 (0.380 vs 0.36) and the
log-uniform one a better model (0.435); benchmarks/investigations/table_e1/xgboost_learning_rate.py measures both.

``search_space`` replaces Tables C.3/C.4 with lists of values per hyperparameter (e.g. leaf sizes past
Table C.3's 4 rows for the instance-level Random Forest); ``overrides`` then fix the hyperparameters it
does not search. Without a ``search_space``, ``overrides`` fix the model and there is no search.

The ``instance`` level (Table E.1) instead copies each bag's label to its instances, fits on instances
and predicts a bag by the mean of its instance predictions (features are the raw embeddings).

Labels: RF regresses y; XGBoost uses the paper's ``binary:logistic`` objective on y / n (soft labels).
Neither has instance scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import loguniform, spearmanr, uniform
from scipy.stats import randint as randint_dist
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid, RandomizedSearchCV
from tqdm.auto import tqdm

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.base import MILModel, Prediction, regress_out_covariates
from mixmil_workflow.models.likelihoods import Binomial, make_likelihood
from mixmil_workflow.models.options import TreeMILConfig
from mixmil_workflow.models.persistence import as_array, load_model, save_model

POOLINGS = ("mean", "median", "moments", "instance")
FORMAT = "mixmil_workflow.TreeMIL/1"


def pool_bags(bags: Bags, pooling: str) -> np.ndarray:
    """Bag features (bags, Q) or (bags, 3Q) for ``moments``."""
    x = bags.x.double().cpu().numpy()
    splits = np.split(x, bags.offsets[1:-1].cpu().numpy())
    if pooling == "mean":
        return np.stack([b.mean(0) for b in splits])
    if pooling == "median":
        return np.stack([np.median(b, 0) for b in splits])
    if pooling == "moments":
        return np.stack([np.concatenate([b.mean(0), (b**2).mean(0), (b**3).mean(0)]) for b in splits])
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def _spearman_scorer(estimator, x, y) -> float:
    rho = spearmanr(estimator.predict(x), y).statistic
    return -1.0 if not np.isfinite(rho) else float(rho)


LEARNING_RATE_SAMPLINGS = ("log_uniform", "uniform")


def search_space(kind: str, learning_rate_sampling: str = "log_uniform") -> dict:
    """Table C.3 / C.4 as scipy distributions and lists for ``RandomizedSearchCV``."""
    if learning_rate_sampling not in LEARNING_RATE_SAMPLINGS:
        raise ValueError(
            f"learning_rate_sampling must be one of {LEARNING_RATE_SAMPLINGS}, got {learning_rate_sampling!r}"
        )
    if kind == "random_forest":  # Table C.3
        return {
            "n_estimators": [50, 100, 150, 200, 500],
            "max_features": ["sqrt", "log2", None],
            "max_depth": [10, 20, 30, 50],
            "min_samples_split": [2, 5, 10],
            "min_samples_leaf": [1, 2, 4],
        }
    if kind == "xgboost":  # Table C.4
        return {
            "max_depth": list(range(3, 10)),
            "learning_rate": (
                loguniform(1e-3, 1.0) if learning_rate_sampling == "log_uniform" else uniform(1e-3, 1.0 - 1e-3)
            ),
            "n_estimators": randint_dist(100, 1001),
            "subsample": uniform(0.5, 0.5),
            "colsample_bytree": uniform(0.5, 0.5),
        }
    raise ValueError(f"tree model must be 'random_forest' or 'xgboost', got {kind!r}")


class TreeMIL(MILModel):
    config_class = TreeMILConfig

    def __init__(self, config: TreeMILConfig | None = None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either a TreeMILConfig or keyword hyperparameters, not both")
        self.config = TreeMILConfig(**kwargs) if config is None else config
        if self.config.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.config.pooling!r}")
        search_space(self.config.kind, self.config.learning_rate_sampling)  # rejects an unknown kind or sampling
        if self.config.kind != "xgboost" and self.config.learning_rate_sampling != "log_uniform":
            raise ValueError("learning_rate_sampling applies to XGBoost only; remove it from the Random Forest's spec")
        if self.config.search_space is not None:
            self._check_search_space()
        self.likelihood = make_likelihood(self.config.likelihood, self.config.n_trials)
        if not isinstance(self.likelihood, Binomial):
            raise ValueError("tree baselines support binomial and Bernoulli labels")
        self.models: list = []
        self.best_params: list[dict] = []
        self.covariate_coef: np.ndarray | None = None
        self.history = self.epoch_seconds = np.zeros(0)  # no epochs: one search per output

    @property
    def chosen_hyperparameters(self) -> list[dict] | None:
        return self.best_params or None

    def _check_search_space(self) -> None:
        """A clear error at construction instead of a failed search hours into a job."""
        cfg, where = self.config, f"{self.config.kind} search_space"
        if not isinstance(cfg.search_space, dict) or not cfg.search_space:
            raise ValueError(f"{where} must map hyperparameter names to lists of values, got {cfg.search_space!r}")
        known = set(self._estimator(0).get_params())
        for name, values in cfg.search_space.items():
            if name not in known:
                raise ValueError(f"{where}: {name!r} is not a {cfg.kind} hyperparameter; check its spelling")
            if not isinstance(values, list | tuple) or not values:
                raise ValueError(f"{where}: {name} must be a non-empty list of values, got {values!r}")
        both = sorted(set(cfg.search_space) & set(cfg.overrides))
        if both:
            raise ValueError(f"{where}: {', '.join(both)} both searched and fixed; remove them from overrides")
        for name in cfg.overrides:
            if name not in known:
                raise ValueError(f"{cfg.kind} overrides: {name!r} is not a {cfg.kind} hyperparameter")
        if cfg.learning_rate_sampling != "log_uniform":
            raise ValueError(
                "learning_rate_sampling draws Table C.4's learning rate; with a search_space, list the rates"
            )

    def _search(self, seed: int, folds: list):
        """Table C.3 / C.4's random search of ``n_iter`` combinations, or the ``search_space``: every
        combination when there are at most ``n_iter`` (a grid, so none is drawn twice or left out), else
        ``n_iter`` drawn without replacement. Either scores each fold by Spearman and refits the best."""
        cfg = self.config
        common = dict(cv=folds, scoring=_spearman_scorer, refit=True, n_jobs=cfg.n_jobs)
        if cfg.search_space is None:
            space = search_space(cfg.kind, cfg.learning_rate_sampling)
            return RandomizedSearchCV(self._estimator(seed), space, n_iter=cfg.n_iter, random_state=seed, **common)
        estimator = self._estimator(seed).set_params(**cfg.overrides)
        space = {name: list(values) for name, values in cfg.search_space.items()}
        if len(ParameterGrid(space)) <= cfg.n_iter:
            return GridSearchCV(estimator, space, **common)
        return RandomizedSearchCV(estimator, space, n_iter=cfg.n_iter, random_state=seed, **common)

    def _estimator(self, seed: int, n_jobs: int = 1):
        if self.config.kind == "random_forest":
            from sklearn.ensemble import RandomForestRegressor

            return RandomForestRegressor(random_state=seed, n_jobs=n_jobs)
        from xgboost import XGBRegressor

        return XGBRegressor(
            objective="binary:logistic", eval_metric="logloss", random_state=seed, n_jobs=n_jobs, tree_method="hist"
        )

    def features(self, bags: Bags) -> np.ndarray:
        """Rows the trees see: pooled bag features, or the instances themselves at the instance level."""
        if self.config.pooling == "instance":
            return bags.x.double().cpu().numpy()
        return pool_bags(bags, self.config.pooling)

    def _target(self, y: np.ndarray) -> np.ndarray:
        return y / self.likelihood.n_trials if self.config.kind == "xgboost" else y

    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> TreeMIL:
        y_arr = self.likelihood.prepare_labels(y).numpy()
        if len(y_arr) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} bags but {len(y_arr)} labels")
        bags, self.covariate_coef = regress_out_covariates(bags, covariates)
        features, sizes = self.features(bags), bags.sizes.cpu().numpy()
        self.models, self.best_params = [], []
        name = f"{self.config.kind} ({self.config.pooling})"
        outputs = tqdm(range(y_arr.shape[1]), desc=name, unit="output", disable=not self.config.progress)
        for p in outputs:
            model, params = self.fit_output(features, y_arr[:, p], sizes, p)
            self.models.append(model)
            self.best_params.append(params)
            outputs.set_postfix_str(f"output {p}: {params}", refresh=False)
        return self

    def fit_output(self, features: np.ndarray, y: np.ndarray, sizes: np.ndarray, p: int) -> tuple[object, dict]:
        """The fitted estimator and chosen hyperparameters of output ``p`` (its seeds derive from ``p``).

        ``features`` are this model's features of the training bags (``features``, after any covariates
        are regressed out as ``fit`` does), ``y`` output p's bag labels and ``sizes`` the bag sizes. ``fit``
        calls it per output; calling it alone gives the same model for that output (benchmarks fit single
        outputs of a slow search this way)."""
        cfg = self.config
        instance_level = cfg.pooling == "instance"
        target = self._target(y)
        if instance_level:
            target = np.repeat(target, sizes)
        # Threads go where they keep the numbers exact: a Random Forest predicting with n_jobs > 1 adds its
        # trees' predictions in the order the threads finish, so its last bits (and a search's scores) would
        # vary from run to run. The search runs its folds x combinations in parallel instead, each fit on one
        # thread; a fixed-hyperparameter fit builds its trees in parallel and predicts on one thread.
        if cfg.overrides and cfg.search_space is None:
            estimator = self._estimator(cfg.seed + p, cfg.n_jobs).set_params(**cfg.overrides)
            return estimator.fit(features, target).set_params(n_jobs=1), dict(cfg.overrides)
        # Folds over bags: at the instance level a bag's instances stay on one side of each split.
        folds = list(_bag_folds(len(sizes), sizes if instance_level else None, cfg.cv_folds, cfg.seed))
        search = self._search(cfg.seed + p, folds)
        search.fit(features, target)
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in search.best_params_.items()}
        return search.best_estimator_, {**cfg.overrides, **params}  # overrides: the searched model's fixed part

    def bag_predictions(self, model, features: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """One output's bag scores from its fitted estimator (instance level: mean over each bag)."""
        pred = model.predict(features)
        if self.config.pooling == "instance":
            pred = np.array([c.mean() for c in np.split(pred, offsets[1:-1])])
        return pred

    def predict(self, bags: Bags, covariates: np.ndarray | None = None) -> Prediction:
        """``bag_effect``: predicted y (RF) or y / n (XGBoost), a monotone score; ``mean``: expected y."""
        if not self.models:
            raise RuntimeError("model is not fitted; call fit() or load() first")
        bags, _ = regress_out_covariates(bags, covariates, self.covariate_coef, fitting=False)
        features = self.features(bags)
        offsets = bags.offsets.cpu().numpy()
        score = np.stack([self.bag_predictions(model, features, offsets) for model in self.models], 1)
        mean = score * self.likelihood.n_trials if self.config.kind == "xgboost" else score
        return Prediction(score, score, mean)

    def save(self, path: str | Path) -> None:
        if not self.models:
            raise RuntimeError("model is not fitted; nothing to save")
        save_model(
            path, FORMAT, self.config, estimators=self.models, best_params=self.best_params,
            covariate_coef=self.covariate_coef,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> TreeMIL:
        # trusted: the estimators are Python objects (only load tree models this workflow wrote)
        payload = load_model(path, FORMAT, "tree baseline", trusted=True)
        model = cls(TreeMILConfig(**payload["config"]))
        model.models, model.best_params = payload["estimators"], payload["best_params"]
        model.covariate_coef = as_array(payload["covariate_coef"])
        return model


def _bag_folds(n_bags: int, sizes: np.ndarray | None, n_folds: int, seed: int):
    """K-fold splits over bags; with instance sizes, expanded to the instances of each bag."""
    kfold = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    if sizes is None:
        yield from kfold.split(np.arange(n_bags))
        return
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for train, test in kfold.split(np.arange(n_bags)):
        yield (
            np.concatenate([np.arange(starts[b], starts[b + 1]) for b in train]),
            np.concatenate([np.arange(starts[b], starts[b + 1]) for b in test]),
        )
