"""MixMIL: user API (fit, predict, instance weights, save, load) around :class:`MixMILModule`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.design import design_matrix
from mixmil_workflow.io import resolve_device
from mixmil_workflow.models.base import InstanceWeights, MILModel, Prediction
from mixmil_workflow.models.glmm import GLMM, GLMMParameters
from mixmil_workflow.models.likelihoods import Categorical, Gaussian, make_likelihood
from mixmil_workflow.models.mixmil_cpu_step import CPUKernelStep
from mixmil_workflow.models.mixmil_module import MixMILModule, weight_mean, weight_summary
from mixmil_workflow.models.options import MixMILConfig
from mixmil_workflow.models.persistence import load_model, save_model, state_dict_cpu
from mixmil_workflow.models.training import FusedAdam, shuffled_minibatches, train_epochs

FORMAT = "mixmil_workflow.MixMIL/1"


class MixMIL(MILModel):
    """Mixed model with attention MIL (Engelmann et al., AISTATS 2024).

    >>> model = MixMIL(likelihood="binomial", n_trials=2, n_epochs=2000).fit(bags, y)
    >>> model.predict(test_bags).bag_effect
    """

    config_class = MixMILConfig

    def __init__(self, config: MixMILConfig | None = None, **kwargs):
        self.config = MixMILConfig(**kwargs) if config is None else config
        if config is not None and kwargs:
            raise TypeError("pass either a MixMILConfig or keyword hyperparameters, not both")
        self.module: MixMILModule | None = None
        self.history: dict[str, np.ndarray] = {}
        # Seconds of the last fit: init (GLMM), train (the epochs and the freeze of the predictive
        # samples, Appendix A's statistics), freeze (that freeze alone).
        self.timings: dict[str, float] = {}
        self.epoch_seconds: np.ndarray = np.zeros(0)  # wall time of each training epoch of the last fit
        self.glmm_: GLMMParameters | None = None

    # fitting ----------------------------------------------------------------------------------
    def fit(self, bags: Bags, y, covariates: np.ndarray | None = None) -> MixMIL:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        device = torch.device(resolve_device(cfg.device))
        likelihood = make_likelihood(cfg.likelihood, cfg.n_trials, cfg.n_classes, cfg.missing_labels)
        y_t = likelihood.prepare_labels(y)
        if len(y_t) != bags.n_bags:
            raise ValueError(f"{bags.n_bags} bags but {len(y_t)} labels")
        if bags.n_bags < 2:
            raise ValueError("MixMIL needs at least two training bags")
        n_outputs = likelihood.n_outputs(y_t)
        fe = design_matrix(covariates, bags.n_bags)
        start = time.perf_counter()
        self.module = self._build_module(bags, y, covariates, fe, likelihood, n_outputs).to(device)
        self.timings["init_seconds"] = time.perf_counter() - start
        y_t = y_t.to(device) if isinstance(likelihood, Categorical) else y_t.to(device, torch.float32)
        start = time.perf_counter()
        self._train(bags.to(device), torch.as_tensor(fe, dtype=torch.float32, device=device), y_t)
        self.timings["train_seconds"] = time.perf_counter() - start
        return self

    def _build_module(self, bags, y, covariates, fe, likelihood, n_outputs) -> MixMILModule:
        cfg = self.config
        q = bags.n_features
        if cfg.init == "glmm":
            glmm = GLMM(cfg.likelihood, cfg.n_trials, seed=cfg.seed, missing_labels=cfg.missing_labels)
            glmm.likelihood = likelihood  # share it: the class count inferred from the labels carries over
            self.glmm_ = glmm.fit(bags, y, covariates).params
            alpha, mu_beta, sd_beta = _glmm_to_mixmil(self.glmm_, bags)
            if isinstance(likelihood, Gaussian):
                likelihood.initialise(n_outputs, torch.as_tensor(self.glmm_.residual_sd))
        elif cfg.init == "prior":
            gen = np.random.default_rng(cfg.seed)
            alpha = np.zeros((fe.shape[1], n_outputs))
            mu_beta = 1e-3 * gen.standard_normal((q, n_outputs))
            sd_beta = np.full((q, n_outputs), 1e-3)
            if isinstance(likelihood, Gaussian):
                likelihood.initialise(n_outputs)
        else:
            raise ValueError(f"init must be 'glmm' or 'prior', got {cfg.init!r}")
        # gamma = 0: uniform attention, so MixMIL starts exactly at mean pooling (the GLMM).
        mean = np.concatenate([np.zeros((n_outputs, q)), mu_beta.T], 1)
        sd = np.concatenate([np.full((n_outputs, q), cfg.posterior_sd_gamma), sd_beta.T], 1)
        var_beta = np.maximum((mu_beta**2 + sd_beta**2).mean(0), 1e-6)
        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        return MixMILModule(
            likelihood,
            alpha=f32(alpha),
            posterior_mean=f32(mean),
            posterior_sd=f32(sd),
            prior_var_gamma=f32(np.full(n_outputs, cfg.prior_var_gamma)),
            prior_var_beta=f32(var_beta),
            posterior=cfg.posterior,
            segment_backend=cfg.segment_backend,
        )

    def _train(self, bags: Bags, fe: torch.Tensor, y: torch.Tensor) -> None:
        cfg, module = self.config, self.module
        device = fe.device
        n = bags.n_bags
        shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        sample_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        dense_x = bags.dense() if bags.is_equal_size else None
        optimiser = FusedAdam(module.parameters(), lr=cfg.lr)
        kernel_step = CPUKernelStep(module, cfg.n_samples, n) if module.uses_cpu_kernels else None

        def train_step(idx: torch.Tensor):
            """One minibatch: gradients, the Adam update; (loss, NLL, KL) x bags, in the parameters' dtype."""
            if dense_x is not None:
                batch_x, batch_bags = dense_x.index_select(0, idx), None
            else:
                batch_x, batch_bags = None, bags.subset(idx)
            if kernel_step is not None:
                nll, kl = kernel_step(batch_x, batch_bags, fe[idx], y[idx], sample_gen)
                optimiser.step()
                return np.array([nll + kl, nll, kl]) * len(idx)
            # Gradients in closed form, written into .grad (see MixMILModule.training_step).
            loss, nll, kl = module.training_step(
                batch_x, fe[idx], y[idx], n, cfg.n_samples, sample_gen, bags=batch_bags
            )
            optimiser.step()
            return torch.stack([loss, nll, kl]) * len(idx)  # stays on the device: no sync per step

        def run_epoch(epoch: int):
            batches = shuffled_minibatches(n, cfg.batch_size, shuffle_gen)
            # loss, NLL, KL per bag; summed in the parameters' dtype, in minibatch order
            return sum(train_step(idx.to(device)) for idx in batches) / n

        record = train_epochs(run_epoch, cfg.n_epochs, name="MixMIL", progress=cfg.progress)
        self.epoch_seconds = record.epoch_seconds
        losses = record.losses.reshape(-1, 3)
        # Per-bag negative ELBO: the label-only constant left out of the steps, added back exactly.
        constant = module.likelihood.log_constant(y.cpu()).mean().item()
        self.history = {"loss": losses[:, 0] - constant, "nll": losses[:, 1] - constant, "kl": losses[:, 2]}
        start = time.perf_counter()
        pred_gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)
        chunk = self.chunk_size(cfg.n_predictive_samples + 1, module.n_outputs)
        module.set_prediction_state(bags, cfg.n_predictive_samples, pred_gen, chunk)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the clock below would otherwise stop at the last kernel's launch
        self.timings["freeze_seconds"] = time.perf_counter() - start  # part of train_seconds

    # prediction -------------------------------------------------------------------------------
    def _check_fitted(self) -> MixMILModule:
        if self.module is None or not self.module.has_prediction_state:
            raise RuntimeError("MixMIL is not fitted; call fit() or load() first")
        return self.module

    @property
    def device(self) -> torch.device:
        """Where the fitted model's tensors live."""
        return self._check_fitted().alpha.device

    def chunk_size(self, n_samples: int, n_outputs: int) -> int:
        """Instances per scoring chunk: bounded by ``chunk_instances`` and by ``chunk_values`` values of
        instance x sample x output, so prediction memory does not grow with samples and outputs."""
        per_instance = max(1, n_samples * n_outputs)
        return max(1, min(self.config.chunk_instances, self.config.chunk_values // per_instance))

    def _prediction_chunk(self, bags: Bags, effects: bool) -> int:
        """Instances per chunk of bags in prediction. Bags pooled in buckets keep every intermediate within
        a bucket, so their chunk only bounds the padded copy and the (3, instances, P) statistics, and it
        is the same whatever is asked (the same buckets, so the same numbers); the dense and segment paths
        hold instance x sample x output values for the effects."""
        module = self._check_fitted()
        n_samples = module.pred_theta.shape[0] if effects and not module.pools_in_buckets(bags) else 3
        return self.chunk_size(n_samples, module.n_outputs)

    def _posterior_predict(
        self, bags: Bags, covariates: np.ndarray | None, summarise=None, n_stats: int = 0
    ) -> tuple[Prediction, torch.Tensor | None]:
        """Posterior predictive (Eq. 11) and, with ``summarise``, instance-weight statistics, in one pass."""
        module = self._check_fitted()
        bags = bags.to(module.alpha.device)
        with torch.no_grad():
            fixed = self._fixed_effects(bags, covariates)
            u, stats = module.predictive_samples(bags, self._prediction_chunk(bags, True), summarise, n_stats)
            mean = module.likelihood.mean(fixed.unsqueeze(-1) + u).mean(-1)
            u = u.mean(-1)
        return Prediction(u.cpu().numpy(), (fixed + u).cpu().numpy(), mean.cpu().numpy()), stats

    def _fixed_effects(self, bags: Bags, covariates: np.ndarray | None) -> torch.Tensor:
        module = self._check_fitted()
        fixed = design_matrix(covariates, bags.n_bags, fitting=False)
        return torch.as_tensor(fixed, dtype=torch.float32, device=module.alpha.device) @ module.alpha  # (B, P)

    def predict(self, bags: Bags, covariates: np.ndarray | None = None, method: str = "posterior") -> Prediction:
        """Bag predictions. ``method="posterior"``: posterior predictive (Eq. 11) averaged over the frozen
        posterior samples; ``"mean"``: plug-in posterior mean. Independent of the other bags given."""
        if method == "posterior":
            return self._posterior_predict(bags, covariates)[0]
        if method != "mean":
            raise ValueError(f"method must be 'posterior' or 'mean', got {method!r}")
        module = self._check_fitted()
        bags = bags.to(module.alpha.device)
        with torch.no_grad():
            fixed = self._fixed_effects(bags, covariates)
            u = module.bag_effect_at_mean(bags, self.chunk_size(1, module.n_outputs))
            mean = module.likelihood.mean((fixed + u).unsqueeze(-1)).squeeze(-1)
        return Prediction(u.cpu().numpy(), (fixed + u).cpu().numpy(), mean.cpu().numpy())

    def instance_weights(self, bags: Bags, credible_level: float = 0.95) -> InstanceWeights:
        """Posterior mean of the attention weights E_q[softmax(X gamma)] with equal-tailed credible
        bounds from the frozen posterior samples."""
        bags = bags.to(self.device)
        summarise = weight_summary(*_credible_quantiles(credible_level))
        return _instance_weights(self._weight_statistics(bags, summarise, 3), bags)

    def instance_scores(self, bags: Bags, covariates: np.ndarray | None = None) -> np.ndarray:
        """(instances, P): the posterior mean of the attention weights (covariates do not enter them)."""
        return self._weight_statistics(bags.to(self.device), weight_mean, 1)[0].cpu().numpy()

    def _weight_statistics(self, bags: Bags, summarise, n_stats: int) -> torch.Tensor:
        """Statistics of the instance weights over the frozen samples, without the bag effects."""
        module = self._check_fitted()
        parts = []
        with torch.no_grad():
            # Buckets bound the weights' memory; chunks bound the gathers and the (n_stats, instances, P) output.
            for lo, hi in bags.chunks(self._prediction_chunk(bags, False)):
                parts.append(module.posterior_pass(bags.slice(lo, hi), module.pred_theta, False, summarise, n_stats)[1])
        return torch.cat(parts, 1)

    def predict_with_instance_weights(
        self, bags: Bags, covariates: np.ndarray | None = None, credible_level: float = 0.95
    ) -> tuple[Prediction, InstanceWeights]:
        """:meth:`predict` and :meth:`instance_weights` of the same bags (the same numbers) from one pass
        over them: bags of different sizes compute each posterior sample's attention once for both."""
        summarise = weight_summary(*_credible_quantiles(credible_level))
        prediction, stats = self._posterior_predict(bags, covariates, summarise, 3)
        return prediction, _instance_weights(stats, bags)

    def predict_with_instance_scores(
        self, bags: Bags, covariates: np.ndarray | None = None
    ) -> tuple[Prediction, np.ndarray]:
        prediction, stats = self._posterior_predict(bags, covariates, weight_mean, 1)
        return prediction, stats[0].cpu().numpy()

    @property
    def loss_history(self) -> np.ndarray:
        return np.asarray(self.history.get("loss", []), dtype=float)

    # parameters -------------------------------------------------------------------------------
    def n_parameters(self) -> dict[str, int]:
        """Likelihood parameters (2Q + K per output, paper Section 3.4.5) and variational parameters."""
        module = self._check_fitted()
        p, q, k = module.n_outputs, module.n_features, module.alpha.shape[0]
        return {"likelihood": p * (2 * q + k), "variational": module.q.n_parameters()}

    # persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        module = self._check_fitted()
        lik = module.likelihood
        dims = {"n_features": module.n_features, "n_covariates": module.alpha.shape[0], "n_outputs": module.n_outputs}
        save_model(
            path, FORMAT, self.config, dims=dims, n_classes=lik.n_classes if isinstance(lik, Categorical) else None,
            state_dict=state_dict_cpu(module), history=dict(self.history),
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> MixMIL:
        payload = load_model(path, FORMAT, "MixMIL")
        config = MixMILConfig(**payload["config"])
        if device is not None:
            config.device = device
        model = cls(config)
        d = payload["dims"]
        state = payload["state_dict"]
        likelihood = make_likelihood(config.likelihood, config.n_trials, payload["n_classes"], config.missing_labels)
        if isinstance(likelihood, Gaussian):
            likelihood.initialise(d["n_outputs"])
        p, q2 = d["n_outputs"], 2 * d["n_features"]
        module = MixMILModule(
            likelihood,
            alpha=torch.zeros(d["n_covariates"], p),
            posterior_mean=torch.zeros(p, q2),
            posterior_sd=torch.ones(p, q2),
            prior_var_gamma=torch.ones(p),
            prior_var_beta=torch.ones(p),
            posterior=config.posterior,
            segment_backend=config.segment_backend,
        )
        for name in ("pred_theta", "pred_center", "pred_scale"):
            setattr(module, name, torch.empty_like(state[name]))
        module.load_state_dict(state)
        model.module = module.to(resolve_device(config.device))
        model.history = {k: v.numpy() for k, v in payload["history"].items()}
        return model


def _credible_quantiles(credible_level: float) -> tuple[float, float]:
    if not 0.0 < credible_level < 1.0:
        raise ValueError(f"credible_level must be in (0, 1), got {credible_level}")
    return (1 - credible_level) / 2, (1 + credible_level) / 2


def _instance_weights(stats: torch.Tensor, bags: Bags) -> InstanceWeights:
    out = stats.cpu().numpy()
    return InstanceWeights(out[0], out[1], out[2], bags.offsets.cpu().numpy())


def _glmm_to_mixmil(params: GLMMParameters, bags: Bags) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map GLMM coefficients to MixMIL's parameterisation so that, with gamma = 0, MixMIL's predictor
    F alpha + b (t - m) / s equals the GLMM's F alpha + (xbar - c) beta exactly: beta keeps its
    direction and is rescaled so that b = RMS(beta) is the training sd of the GLMM's bag effect."""
    xm = bags.mean_pool().double().cpu().numpy()
    u = (xm - params.center) @ params.beta_mean  # (N, P), mean 0 over the training bags
    sd_u = u.std(0, ddof=1)
    rms = np.sqrt((params.beta_mean**2).mean(0))
    factor = np.where(rms > 0, sd_u / np.where(rms > 0, rms, 1.0), 0.0)
    mu_beta = params.beta_mean * factor
    sd_beta = np.maximum(params.beta_sd * factor, 1e-4)
    if np.any(rms == 0):
        mu_beta[:, rms == 0] = 1e-3
    return params.alpha, mu_beta, sd_beta
