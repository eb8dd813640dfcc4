"""Instance-feature preprocessing of bring-your-own-bags fits, learned from the training bags only.

Per fit (and per inner fit of a nested search), in this order: features constant over the training
instances are dropped (a log line names them), features are standardised to zero mean and unit variance
over the training instances, and optionally projected onto the first ``pca`` principal components of the
training instances. The held-out bags are transformed with the training statistics, so nothing about
them leaks into the fit.

``standardize: auto`` (the default) standardises raw ``X`` (counts, pixel statistics and hand-made
features span very different units) and leaves ``obsm`` embeddings (scVI, PCA or foundation-model
features, already on a common scale) as they are; ``true`` / ``false`` force it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PCA_FIT_INSTANCES = 200_000  # PCA learns its axes from at most this many training instances (seeded sample)


@dataclass(frozen=True)
class Preprocessing:
    standardize: bool
    pca: int = 0  # components kept; 0: none
    drop_constant: bool = True

    @classmethod
    def from_config(cls, config: Mapping, embedding: str) -> Preprocessing:
        standardize = config["standardize"]
        if standardize == "auto":
            standardize = embedding == "X"
        return cls(bool(standardize), int(config["pca"]), bool(config["drop_constant"]))

    def describe(self) -> str:
        steps = (["drop constant features"] if self.drop_constant else []) + (
            ["standardise"] if self.standardize else []
        )
        steps += [f"PCA to {self.pca} components"] if self.pca else []
        return ", ".join(steps) or "none"


@dataclass
class FittedPreprocessing:
    keep: np.ndarray  # feature indices kept
    mean: np.ndarray | None
    scale: np.ndarray | None
    components: np.ndarray | None  # (kept features, pca)
    pca_mean: np.ndarray | None

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = x[:, self.keep] if len(self.keep) < x.shape[1] else x
        if self.mean is not None:
            out = (out - self.mean) / self.scale
        if self.components is not None:
            out = (out - self.pca_mean) @ self.components
        return np.ascontiguousarray(out, dtype=np.float32)

    def apply(self, bags):
        """``bags`` (a :class:`~mixmil_workflow.bags.Bags` of the raw features) transformed as the fit's."""
        import torch

        from mixmil_workflow.bags import Bags

        x = torch.from_numpy(self.transform(bags.x.cpu().numpy()))
        return Bags(x, bags.offsets.cpu())

    def save(self, path) -> None:
        """An .npz beside a saved model: what the fit learned from its training instances."""
        from mixmil_workflow.io import save_npz

        arrays = {k: v for k, v in vars(self).items() if v is not None}
        save_npz(path, **arrays)

    @classmethod
    def load(cls, path) -> FittedPreprocessing:
        with np.load(path) as arrays:
            return cls(**{name: (arrays[name] if name in arrays.files else None) for name in _FIELDS})


_FIELDS = ("keep", "mean", "scale", "components", "pca_mean")


def fit_preprocessing(options: Preprocessing, x_train: np.ndarray, seed: int, log=print) -> FittedPreprocessing:
    """Learn the steps from the training instances ``x_train`` (float32, instances x features)."""
    n_features = x_train.shape[1]
    keep = np.arange(n_features)
    if options.drop_constant:
        spread = x_train.max(0) - x_train.min(0)
        constant = np.flatnonzero(spread == 0)
        if len(constant) == n_features:
            raise ValueError("every feature is constant over the training bags' instances; nothing to learn from")
        if len(constant):
            shown = ", ".join(map(str, constant[:10])) + (" ..." if len(constant) > 10 else "")
            log(f"preprocessing: dropped {len(constant)} feature(s) constant over the training instances: {shown}")
            keep = np.flatnonzero(spread != 0)
    mean = scale = components = pca_mean = None
    x = x_train[:, keep] if len(keep) < n_features else x_train
    if options.standardize:
        mean = x.mean(0, dtype=np.float64).astype(np.float32)
        scale = x.std(0, dtype=np.float64).astype(np.float32)
        scale[scale == 0] = 1.0
    if options.pca:
        from sklearn.decomposition import PCA

        if options.pca > len(keep):
            raise ValueError(f"preprocessing.pca is {options.pca}, but the features number {len(keep)}; lower it")
        rng = np.random.default_rng(seed)
        rows = (
            np.sort(rng.choice(len(x), PCA_FIT_INSTANCES, replace=False)) if len(x) > PCA_FIT_INSTANCES else slice(None)
        )
        sample = x[rows] if mean is None else (x[rows] - mean) / scale
        pca = PCA(options.pca, random_state=seed).fit(sample)
        components, pca_mean = pca.components_.T.astype(np.float32), pca.mean_.astype(np.float32)
        log(f"preprocessing: PCA to {options.pca} components ({pca.explained_variance_ratio_.sum():.1%} of variance)")
    return FittedPreprocessing(keep, mean, scale, components, pca_mean)
