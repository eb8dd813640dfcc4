import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mixmil_workflow import GLMM, Bags, MixMIL
from mixmil_workflow.metrics import retrieval_auc_per_output, spearman_per_output
from mixmil_workflow.models.attention_pool import (
    DenseAttentionPool,
    PaddedAttentionPool,
    pad_buckets,
    padded_attention_pool_backward,
    padded_attention_pool_forward,
    padded_attention_weights,
    size_buckets,
)
from mixmil_workflow.models.likelihoods import LabelError
from mixmil_workflow.models.mixmil_module import MixMILModule
from mixmil_workflow.models.segment import has_torch_scatter
from mixmil_workflow.models.training import shuffled_minibatches
from tests.support.data import ragged_bags

FAST = dict(n_epochs=3, batch_size=32, progress=False, n_predictive_samples=16)


def _fit(sim, **kw):
    return MixMIL(**{**FAST, **kw}).fit(sim.bags("train"), sim.y_train)


def test_dense_fast_path_matches_segment_path_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(5, 7, 4, dtype=torch.float64)
    directions = torch.randn(2 * 6, 4, dtype=torch.float64, requires_grad=True)
    bags = Bags.from_dense(x, dtype=torch.float64)
    # Reference: plain autograd over the segment ops.
    gamma, beta = directions.view(2, 6, 4).unbind(0)
    from mixmil_workflow.models.segment import segment_softmax, segment_sum

    w = segment_softmax(bags.x @ gamma.T, bags.offsets, bags.index)
    ref = segment_sum(w * (bags.x @ beta.T), bags.offsets, bags.index).T
    fast = DenseAttentionPool.apply(directions, bags.dense())
    torch.testing.assert_close(fast, ref)
    g = torch.randn_like(ref)
    (grad_ref,) = torch.autograd.grad((ref * g).sum(), directions)
    (grad_fast,) = torch.autograd.grad((fast * g).sum(), directions)
    torch.testing.assert_close(grad_fast, grad_ref)
    torch.autograd.gradcheck(lambda d: DenseAttentionPool.apply(d, bags.dense()), (directions,))


@pytest.mark.parametrize("bucket_scores", [1, 240, 10**6])
def test_padded_buckets_match_segment_path_values_gradients_and_weights(bucket_scores):
    """Bags of different sizes pooled in padded buckets (one bag per bucket, a few, or all in one) give the
    segment ops' values, gradients and attention weights."""
    from mixmil_workflow.models.segment import segment_softmax, segment_sum

    torch.manual_seed(0)
    sizes = [8, 1, 9, 8, 3, 9, 2, 16, 7]
    bags = Bags.from_list([torch.randn(k, 4, dtype=torch.float64) for k in sizes], dtype=torch.float64)
    directions = torch.randn(2 * 6, 4, dtype=torch.float64, requires_grad=True)
    gamma, beta = directions.view(2, 6, 4).unbind(0)
    w_ref = segment_softmax(bags.x @ gamma.T, bags.offsets, bags.index)
    ref = segment_sum(w_ref * (bags.x @ beta.T), bags.offsets, bags.index).T
    buckets = pad_buckets(bags, 12, bucket_scores, min_rows=1)
    assert sorted(torch.cat([b.bags for b in buckets]).tolist()) == list(range(len(sizes)))
    assert (len(buckets) == len(sizes)) == (bucket_scores == 1)
    assert any(b.pad is not None for b in buckets) == (bucket_scores > 1)
    with torch.no_grad():
        blocks, moments = padded_attention_pool_forward(directions, buckets, bags.n_bags, True, bucket_scores)
    torch.testing.assert_close(blocks, ref.detach())
    g = torch.randn_like(ref)
    (grad_ref,) = torch.autograd.grad((ref * g).sum(), directions)
    torch.testing.assert_close(padded_attention_pool_backward(moments, g), grad_ref)
    fast = PaddedAttentionPool.apply(directions, buckets, bags.n_bags)
    (grad_fast,) = torch.autograd.grad((fast * g).sum(), directions)
    torch.testing.assert_close(grad_fast, grad_ref)
    torch.autograd.gradcheck(lambda d: PaddedAttentionPool.apply(d, buckets, bags.n_bags), (directions,))
    with torch.no_grad():
        weights = padded_attention_weights(gamma, bags, pad_buckets(bags, 6, bucket_scores, 1), bucket_scores)
    torch.testing.assert_close(weights, w_ref.detach())


def test_size_buckets_bound_padding_and_size():
    rng = np.random.default_rng(0)
    sizes = np.maximum(1, rng.lognormal(5, 0.6, 300).astype(int))
    buckets = size_buckets(sizes, rows_per_bucket=2000, max_padding=0.1)
    assert sorted(np.concatenate(buckets).tolist()) == list(range(300))
    for members in buckets:
        padded, real = len(members) * sizes[members].max(), sizes[members].sum()
        assert len(members) == 1 or (padded <= 2000 and padded <= 1.1 * real)
    assert len(buckets) < 300  # bags of similar size share buckets
    assert [len(b) for b in size_buckets(np.full(10, 5), rows_per_bucket=10**6)] == [10]


def _perturbed_double_module(model: MixMIL) -> MixMILModule:
    module = model.module.double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in module.parameters():  # away from the GLMM start: off-diagonal factor, gamma != 0
            param.add_(0.05 * torch.randn(param.shape, generator=gen, dtype=param.dtype).to(param.device))
    return module


@pytest.mark.parametrize("posterior", ["full_rank", "mean_field"])
@pytest.mark.parametrize("likelihood", ["binomial", "bernoulli", "gaussian", "categorical", "missing"])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("fused", [True, False], ids=["kernels", "torch"])
def test_closed_form_training_step_equals_autograd_of_the_elbo(posterior, likelihood, ragged, fused):
    """training_step (what fit uses) gives loss() and loss().backward()'s gradients for every parameter,
    through the CPU kernels (binomial and Bernoulli) and through the torch step (every likelihood; the
    GPU's path)."""
    rng = np.random.default_rng(0)
    n, q = 24, 3
    sizes = rng.integers(2, 7, n) if ragged else np.full(n, 5)
    bags = Bags.from_list([rng.standard_normal((int(k), q)) for k in sizes])
    counts = rng.integers(0, 3, (n, 2)).astype(float)
    y, kw = {
        "binomial": (counts, {}),
        "bernoulli": ((counts > 0).astype(float), {}),
        "gaussian": (counts + rng.standard_normal((n, 2)), {}),
        "categorical": (counts[:, 0].astype(int), {}),
        "missing": (np.where(rng.random((n, 2)) < 0.3, np.nan, counts), {"missing_labels": True}),
    }[likelihood]
    lik = "binomial" if likelihood == "missing" else likelihood
    model = MixMIL(likelihood=lik, posterior=posterior, **{**FAST, "n_epochs": 1}, **kw).fit(bags, y)
    module = _perturbed_double_module(model)
    module.fused_cpu_step = fused
    device = module.alpha.device  # the GPU where one is visible (device "auto"): both paths run there
    batch = bags.to(device).subset(torch.arange(3, 15)).to(dtype=torch.float64)
    y_t = module.likelihood.prepare_labels(y)[3:15].to(device)
    y_t = y_t if likelihood == "categorical" else y_t.double()
    fe = torch.ones(12, 1, dtype=torch.float64, device=device)

    loss, nll, kl = module.loss(batch, fe, y_t, n, 4, torch.Generator(device=device).manual_seed(7))
    module.zero_grad(set_to_none=True)
    loss.backward()
    want = {name: param.grad.clone() for name, param in module.named_parameters()}
    module.zero_grad(set_to_none=True)
    dense = None if ragged else batch.dense()
    generator = torch.Generator(device=device).manual_seed(7)
    got = module.training_step(dense, fe, y_t, n, 4, generator, bags=batch if ragged else None)
    torch.testing.assert_close(torch.stack(got), torch.stack([loss, nll, kl]).detach())
    assert set(want) == {name for name, param in module.named_parameters() if param.grad is not None}
    for name, param in module.named_parameters():
        torch.testing.assert_close(param.grad, want[name], msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.skipif(not has_torch_scatter(), reason="torch-scatter not installed (optional extra [scatter])")
def test_the_scatter_backend_gives_the_default_paths_step_and_predictions():
    """The optional torch-scatter segment ops (``segment_backend="scatter"``) pool ragged bags to the loss,
    gradients, predictions and instance weights of the default bucketed path."""
    rng = np.random.default_rng(2)
    n = 24
    bags = Bags.from_list([rng.standard_normal((int(k), 3)) for k in rng.integers(2, 7, n)])
    y = rng.integers(0, 3, (n, 2)).astype(float)
    model = MixMIL(**{**FAST, "n_epochs": 1}).fit(bags, y)
    predictions = {}
    for backend in ("torch", "scatter"):
        model.module.segment_backend = backend
        predictions[backend] = model.predict(bags).mean, model.instance_scores(bags)
    for got, want in zip(predictions["scatter"], predictions["torch"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    module = _perturbed_double_module(model)
    batch = bags.subset(torch.arange(3, 15)).to(dtype=torch.float64)
    y_t = module.likelihood.prepare_labels(y)[3:15].double()
    fe = torch.ones(12, 1, dtype=torch.float64)
    steps = {}
    for backend in ("torch", "scatter"):
        module.segment_backend = backend
        steps[backend] = _step_grads(module, module.fused_cpu_step, None, fe, y_t, n, 4, bags=batch)
    torch.testing.assert_close(steps["scatter"][0], steps["torch"][0])
    for name, grad in steps["torch"][1].items():
        torch.testing.assert_close(steps["scatter"][1][name], grad, msg=lambda m, name=name: f"{name}: {m}")


def _step_grads(module: MixMILModule, fused: bool, *args, bags=None) -> tuple[torch.Tensor, dict]:
    module.fused_cpu_step = fused
    module.zero_grad(set_to_none=True)
    out = module.training_step(*args, torch.Generator().manual_seed(3), bags=bags)
    return torch.stack(out), {name: param.grad.clone() for name, param in module.named_parameters()}


@pytest.mark.parametrize("posterior", ["full_rank", "mean_field"])
def test_kernels_and_torch_step_agree_where_a_minibatch_has_no_spread(posterior):
    """Bags equal to 1e-12 pool to nearly the same t: the sd is clamped and its backward term dropped by
    both steps alike (finite, equal gradients)."""
    rng = np.random.default_rng(1)
    bags = Bags.from_list([rng.standard_normal((4, 3)) for _ in range(12)])
    model = MixMIL(posterior=posterior, **{**FAST, "n_epochs": 1}).fit(bags, rng.integers(0, 3, (12, 2)))
    module = _perturbed_double_module(model)
    same = torch.as_tensor(rng.standard_normal((4, 3)) + 1e-12 * rng.standard_normal((6, 4, 3)))
    args = (same, torch.ones(6, 1, dtype=torch.float64), torch.tensor([[0.0, 1.0]] * 3 + [[2.0, 1.0]] * 3), 12, 4)
    got, got_grads = _step_grads(module, True, *args)
    want, want_grads = _step_grads(module, False, *args)
    torch.testing.assert_close(got, want)
    for name, grad in want_grads.items():
        assert torch.isfinite(got_grads[name]).all()
        torch.testing.assert_close(got_grads[name], grad, msg=lambda m, name=name: f"{name}: {m}")


def test_kernels_nll_over_thousands_of_bags_equals_the_binomial_log_likelihood():
    """The kernel takes the logs of running products of 1 + exp(-|eta|); over thousands of bags and
    extreme predictors its NLL is still the sum of the per-entry terms."""
    from mixmil_workflow.models.likelihoods import Binomial
    from mixmil_workflow.models.mixmil_step_kernels import standardise_binomial

    rng = np.random.default_rng(2)
    s, p, b, q = 2, 3, 3000, 4
    t = rng.standard_normal((s, p, b)) * rng.choice([0.1, 30.0], (s, p, b))
    theta = rng.standard_normal((s, p, 2 * q))
    fixed = rng.standard_normal((b, p))
    y = rng.integers(0, 3, (b, p)).astype(float)
    y[rng.random((b, p)) < 0.1] = np.nan
    grad_t, grad_fixed, effect, grad_effect = np.empty((s, p, b)), np.empty((b, p)), np.empty((s, p)), np.empty((s, p))
    nll = standardise_binomial(t, theta, fixed, y, 2.0, grad_t, grad_fixed, effect, grad_effect)
    xhat = (t - t.mean(-1, keepdims=True)) / t.std(-1, ddof=1, keepdims=True)
    b_rms = np.sqrt((theta[..., q:] ** 2).mean(-1))
    eta = torch.as_tensor(fixed[..., None] + (b_rms[..., None] * xhat).transpose(2, 1, 0))  # (B, P, S)
    likelihood = Binomial(2, allow_missing=True)
    want = -likelihood.log_prob(eta, torch.as_tensor(y), constant=False).mean().item()
    assert nll == pytest.approx(want, rel=1e-12)


def test_kernels_fit_follows_the_torch_step_on_float32(small_sim):
    """A float32 fit through the kernels draws the same noise as the torch step: the same fit to rounding."""
    fits = []
    for fused in (True, False):
        model = MixMIL(**{**FAST, "n_epochs": 4})
        model._build_module = _with_fused(model._build_module, fused)
        fits.append(model.fit(small_sim.bags("train"), small_sim.y_train))
    kernels, torch_step = fits
    np.testing.assert_allclose(kernels.history["loss"], torch_step.history["loss"], rtol=1e-4)
    bags = small_sim.bags("test")
    np.testing.assert_allclose(kernels.predict(bags).bag_effect, torch_step.predict(bags).bag_effect, atol=2e-3)


@pytest.mark.parametrize("fused", [True, False], ids=["kernels", "torch"])
@pytest.mark.parametrize("posterior", ["full_rank", "mean_field"])
@pytest.mark.parametrize("ragged", [False, True])
def test_a_fit_is_its_steps_with_torch_adam_bit_for_bit(small_sim, posterior, ragged, fused):
    """What fit does per minibatch (the CPU step prepared once, FusedAdam) is, bit for bit, a loop of
    training_step (everything set up anew in each minibatch) and torch.optim.Adam(fused=True)."""
    bags = small_sim.bags("train")
    if ragged:
        rng = np.random.default_rng(4)
        dense = bags.dense()
        bags = Bags.from_list([bag[: rng.integers(5, bag.shape[0] + 1)] for bag in dense])
    model = MixMIL(posterior=posterior, **{**FAST, "n_epochs": 2})
    model._build_module = _with_fused(model._build_module, fused)
    seen = {}
    train = model._train

    def keep_the_start(bags, fe, y):
        seen["module"], seen["args"] = copy.deepcopy(model.module), (bags, fe, y)
        train(bags, fe, y)

    model._train = keep_the_start
    model.fit(bags, small_sim.y_train)
    module, (bags, fe, y) = seen["module"], seen["args"]
    cfg = model.config
    shuffle_gen, sample_gen = torch.Generator().manual_seed(cfg.seed), torch.Generator().manual_seed(cfg.seed + 1)
    optimiser = torch.optim.Adam(module.parameters(), lr=cfg.lr, fused=True)
    for _ in range(cfg.n_epochs):
        for idx in shuffled_minibatches(bags.n_bags, cfg.batch_size, shuffle_gen):
            dense, subset = (None, bags.subset(idx)) if ragged else (bags.dense().index_select(0, idx), None)
            module.training_step(dense, fe[idx], y[idx], bags.n_bags, cfg.n_samples, sample_gen, bags=subset)
            optimiser.step()
    for (name, got), want in zip(model.module.named_parameters(), module.parameters(), strict=True):
        assert torch.equal(got, want), name


def _with_fused(build, fused: bool):
    def build_module(*args, **kwargs):
        module = build(*args, **kwargs)
        module.fused_cpu_step = fused
        return module

    return build_module


def test_a_fit_times_the_freeze_of_its_predictive_samples(small_sim):
    timings = _fit(small_sim).timings
    assert 0 < timings["freeze_seconds"] < timings["train_seconds"]


def test_fit_uses_the_closed_form_step_and_keeps_the_factor_lower_triangular(small_sim):
    model = _fit(small_sim)
    tril = model.module.q.tril.detach()
    # The masked (upper and diagonal) entries get zero gradients, so Adam never moves them from 0.
    assert torch.count_nonzero(torch.triu(tril)) == 0
    assert torch.count_nonzero(torch.tril(tril, -1)) > 0
    assert np.isfinite(model.history["loss"]).all()


def test_gamma_zero_gives_mean_pooling(small_sim):
    model = _fit(small_sim)
    module = model.module
    bags = small_sim.bags("test")
    theta = torch.randn(3, module.n_outputs, 2 * module.n_features)
    theta[:, :, : module.n_features] = 0.0
    t = module.pooled_scores(bags, theta)
    want = torch.einsum("bq,spq->bsp", bags.mean_pool(), theta[:, :, module.n_features :])
    torch.testing.assert_close(t, want, rtol=1e-5, atol=1e-5)
    # Same through the segment path: one bag with an extra instance makes the collection ragged.
    ragged = Bags.from_list([*bags.dense(), bags.dense()[0, :1]])
    t_seg = module.pooled_scores(ragged, theta)[:-1]
    torch.testing.assert_close(t_seg, want, rtol=1e-5, atol=1e-5)


def test_initialisation_reproduces_the_glmm(small_sim):
    model = MixMIL(**{**FAST, "n_epochs": 0}).fit(small_sim.bags("train"), small_sim.y_train)
    glmm = GLMM("binomial", 2).fit(small_sim.bags("train"), small_sim.y_train)
    test = small_sim.bags("test")
    np.testing.assert_allclose(
        model.predict(test, method="mean").linear_predictor, glmm.linear_predictor(test), rtol=1e-4, atol=1e-4
    )
    # Uniform attention at initialisation.
    w = model.module.attention(test.to(model.module.alpha.device), model.module.q.mu.unsqueeze(0).detach())
    np.testing.assert_allclose(w.cpu().numpy(), 1 / small_sim.x_test.shape[1], rtol=1e-5)


def test_permutation_invariance_within_bags(small_sim):
    model = _fit(small_sim)
    rng = np.random.default_rng(0)
    x = small_sim.x_test
    perm = np.stack([rng.permutation(x.shape[1]) for _ in range(len(x))])
    x_perm = np.take_along_axis(x, perm[:, :, None], 1)
    a, b = model.predict(Bags.from_dense(x)), model.predict(Bags.from_dense(x_perm))
    np.testing.assert_allclose(a.bag_effect, b.bag_effect, rtol=1e-4, atol=1e-5)
    wa = model.instance_weights(Bags.from_dense(x)).mean.reshape(len(x), x.shape[1], -1)
    wb = model.instance_weights(Bags.from_dense(x_perm)).mean.reshape(len(x), x.shape[1], -1)
    np.testing.assert_allclose(np.take_along_axis(wa, perm[:, :, None], 1), wb, rtol=1e-4, atol=1e-6)


def test_prediction_of_a_bag_does_not_depend_on_other_bags(small_sim):
    model = _fit(small_sim)
    bags = small_sim.bags("test")
    together = model.predict(bags)
    for i in (0, 17):
        alone = model.predict(bags.subset([i]))
        np.testing.assert_allclose(alone.bag_effect[0], together.bag_effect[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(alone.mean[0], together.mean[i], rtol=1e-4, atol=1e-5)


def test_instance_weights_are_normalised_with_ordered_bounds(small_sim):
    model = _fit(small_sim)
    w = model.instance_weights(small_sim.bags("test"), credible_level=0.9)
    per_bag = w.mean.reshape(len(small_sim.x_test), -1, w.mean.shape[1]).sum(1)
    np.testing.assert_allclose(per_bag, 1.0, rtol=1e-5)
    assert np.all(w.lower <= w.mean + 1e-7) and np.all(w.mean <= w.upper + 1e-7)


def test_same_seed_same_numbers_and_other_seed_differs(small_sim):
    a, b, c = _fit(small_sim, seed=5), _fit(small_sim, seed=5), _fit(small_sim, seed=6)
    test = small_sim.bags("test")
    np.testing.assert_array_equal(a.predict(test).bag_effect, b.predict(test).bag_effect)
    assert not np.array_equal(a.predict(test).bag_effect, c.predict(test).bag_effect)


def test_device_auto_and_cuda_fall_back_to_the_cpu_without_a_gpu(small_sim):
    for device in ("auto", "cuda"):
        model = _fit(small_sim, device=device)
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert model.module.alpha.device.type == expected
        assert model.predict(small_sim.bags("test")).bag_effect.shape == (100, 2)


def test_save_load_round_trip(tmp_path, small_sim):
    model = _fit(small_sim, posterior="mean_field")
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = MixMIL.load(path)
    test = small_sim.bags("test")
    saved, restored = model.module.state_dict(), loaded.module.state_dict()
    assert saved.keys() == restored.keys()
    for name in saved:
        assert torch.equal(saved[name].cpu(), restored[name].cpu()), name
    # Same parameters. On a GPU the recomputed credible bounds agreed to float32 rounding, not bit for bit
    # (an H100: up to 3e-8 apart), so the predictions are compared to 1e-6; a wrong load is off by far more.
    np.testing.assert_allclose(model.predict(test).mean, loaded.predict(test).mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        model.instance_weights(test).upper, loaded.instance_weights(test).upper, rtol=1e-6, atol=1e-7
    )
    assert loaded.config == model.config
    assert list(tmp_path.iterdir()) == [path]  # atomic write leaves no temporary file


def test_unfitted_model_and_bad_labels_give_clear_errors(small_sim):
    with pytest.raises(RuntimeError, match="not fitted"):
        MixMIL().predict(small_sim.bags("test"))
    with pytest.raises(ValueError, match="300 bags but 5 labels"):
        MixMIL(**FAST).fit(small_sim.bags("train"), small_sim.y_train[:5])


def test_variable_bag_sizes_and_covariates():
    rng = np.random.default_rng(0)
    bags_list = ragged_bags(seed=1, n_bags=120, q=5, max_size=15)
    signal = np.array([b[:, 0].max() for b in bags_list])  # a few instances drive the label
    covariate = rng.standard_normal(120)
    prob = 1 / (1 + np.exp(-(2 * (signal - signal.mean()) + 0.5 * covariate)))
    y = rng.binomial(1, prob)
    bags = Bags.from_list(bags_list)
    model = MixMIL(likelihood="bernoulli", n_trials=None, n_epochs=30, batch_size=16, progress=False)
    model.fit(bags, y, covariates=covariate)
    pred = model.predict(bags, covariates=covariate)
    assert pred.mean.shape == (120, 1) and np.all((pred.mean > 0) & (pred.mean < 1))
    assert np.corrcoef(pred.linear_predictor[:, 0], np.log(prob / (1 - prob)))[0, 1] > 0.5
    # Ragged prediction equals prediction bag by bag.
    single = model.predict(bags.subset([3]), covariates=covariate[[3]])
    np.testing.assert_allclose(single.mean[0], pred.mean[3], rtol=1e-5)


def test_categorical_and_gaussian_likelihoods_fit():
    rng = np.random.default_rng(2)
    n, i, q = 150, 10, 6
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, i, q)).astype(np.float32)
    x[np.arange(n), 0, :3] += 3.0 * np.eye(3)[y]  # one marker instance per bag carries the class
    cat = MixMIL(likelihood="categorical", n_trials=None, n_epochs=60, batch_size=32, progress=False)
    probs = cat.fit(Bags.from_dense(x), y).predict(Bags.from_dense(x)).mean
    assert probs.shape == (n, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() > 0.6

    yg = x[:, 0, :2].sum(1, keepdims=True) + 0.1 * rng.standard_normal((n, 1))
    gauss = MixMIL(likelihood="gaussian", n_trials=None, n_epochs=60, batch_size=32, progress=False)
    pred = gauss.fit(Bags.from_dense(x), yg).predict(Bags.from_dense(x)).mean
    assert np.corrcoef(pred[:, 0], yg[:, 0])[0, 1] > 0.5


def test_short_fit_beats_the_glmm_on_a_simulation(small_sim):
    glmm = GLMM("binomial", 2).fit(small_sim.bags("train"), small_sim.y_train)
    test = small_sim.bags("test")
    rho_glmm = spearman_per_output(glmm.linear_predictor(test), small_sim.u_test).mean()
    model = MixMIL(n_epochs=150, progress=False).fit(small_sim.bags("train"), small_sim.y_train)
    rho = spearman_per_output(model.predict(test).bag_effect, small_sim.u_test).mean()
    auc = retrieval_auc_per_output(model.instance_weights(test).mean, small_sim.w_test.reshape(-1, 2)).mean()
    assert rho > rho_glmm + 0.03, (rho, rho_glmm)
    assert auc > 0.7


def test_missing_labels_are_masked_from_the_glmm_start_and_the_elbo(small_sim, tmp_path):
    rng = np.random.default_rng(0)
    y = small_sim.y_train.astype(float)
    y[rng.uniform(size=len(y)) < 0.6, 1] = np.nan  # 60 % of output 1 not measured
    train, test = small_sim.bags("train"), small_sim.bags("test")
    with pytest.raises(LabelError, match="missing_labels=True"):
        MixMIL(**FAST).fit(train, y)
    glmm = GLMM("binomial", 2, missing_labels=True).fit(train, y)
    complete = GLMM("binomial", 2).fit(train, small_sim.y_train)
    as_zero = GLMM("binomial", 2).fit(train, np.nan_to_num(y))
    lp, lp_full, lp_zero = (m.linear_predictor(test)[:, 1] for m in (glmm, complete, as_zero))
    assert np.corrcoef(lp, lp_full)[0, 1] > 0.8  # fitted on 40 % of the bags
    assert abs(glmm.params.alpha[0, 1] - complete.params.alpha[0, 1]) < abs(
        as_zero.params.alpha[0, 1] - complete.params.alpha[0, 1]
    )  # the intercept is not dragged towards "0 copies" by the missing bags
    model = MixMIL(n_epochs=60, progress=False, missing_labels=True).fit(train, y)
    assert np.isfinite(model.history["loss"]).all()
    rho = spearman_per_output(model.predict(test).bag_effect, small_sim.u_test)
    assert rho[1] > 0.5, rho
    model.save(tmp_path / "m.pt")
    again = MixMIL.load(tmp_path / "m.pt")
    assert again.config.missing_labels
    np.testing.assert_allclose(again.predict(test).mean, model.predict(test).mean, rtol=1e-5)


def test_credible_bounds_leave_torchs_thread_count_alone():
    """numba's OpenMP pool, started by the first credible bounds of a process, sets the OpenMP runtime's
    thread count (which torch shares) to NUMBA_NUM_THREADS; a job set to one thread must stay at one."""
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from mixmil_workflow.models.order_statistics import tail_quantiles\n"
        "for _ in range(2): tail_quantiles(torch.rand(100, 3000), 0.025, 0.975)\n"
        "print(torch.get_num_threads())"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "4"}  # a pool larger than torch's, on any machine
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("n_samples", [1, 2, 7, 8, 9, 16, 100, 101])
def test_tail_quantiles_give_torch_quantile(n_samples):
    from mixmil_workflow.models.order_statistics import tail_quantiles

    values = torch.rand(n_samples, 3000, generator=torch.Generator().manual_seed(n_samples))
    values[:, :100] = 0.5  # ties (a one-instance bag has weight 1 in every sample)
    for lower_q, upper_q in ((0.025, 0.975), (0.0, 1.0), (0.5, 0.5), (0.1, 0.9), (0.05, 0.95)):
        want = torch.quantile(values, torch.tensor([lower_q, upper_q]), dim=0)
        for got, ref in zip(tail_quantiles(values, lower_q, upper_q), want, strict=True):
            assert torch.equal(got, ref)
        stack = values.view(n_samples, 4, 750).transpose(0, 1)  # (B, samples, M): samples on axis -2
        want = torch.quantile(stack, torch.tensor([lower_q, upper_q]), dim=1)
        for got, ref in zip(tail_quantiles(stack, lower_q, upper_q), want, strict=True):
            assert torch.equal(got, ref)
    with pytest.raises(ValueError, match="lower_q"):
        tail_quantiles(values, 0.6, 0.9)


@pytest.mark.parametrize("bucket_scores", [1, 10**6])
def test_attention_pass_matches_the_weights_and_pooling_of_every_sample(bucket_scores):
    """Mean and credible bounds of the instance weights from padded buckets equal those of the segment
    softmax's weights of every posterior sample, and the same pass's pooled scores equal the pooling's."""
    from mixmil_workflow.models.attention_pool import pad_buckets, padded_attention_pass, padded_attention_pool_forward
    from mixmil_workflow.models.order_statistics import tail_quantiles
    from mixmil_workflow.models.segment import segment_softmax

    torch.manual_seed(0)
    bags = Bags.from_list([torch.randn(k, 4) for k in [8, 1, 9, 8, 3, 9, 2, 16, 7]])
    gamma, beta = torch.randn(20, 3, 4), torch.randn(20, 3, 4)  # 20 samples, 3 outputs
    w = segment_softmax(bags.x @ gamma.reshape(60, 4).T, bags.offsets, bags.index).view(-1, 20, 3)
    lower, upper = tail_quantiles(w.permute(1, 0, 2).reshape(20, -1), 0.025, 0.975)
    want = torch.stack([w.mean(1), lower.view(-1, 3), upper.view(-1, 3)])

    def summarise(slab):
        return (slab.mean(-2), *tail_quantiles(slab, 0.025, 0.975))

    t, got = padded_attention_pass(gamma, beta, bags, summarise, 3, bucket_scores)
    torch.testing.assert_close(got, want)
    directions = torch.cat([gamma.reshape(60, 4), beta.reshape(60, 4)])
    pooled, _ = padded_attention_pool_forward(directions, pad_buckets(bags, 120), bags.n_bags, keep=False)
    torch.testing.assert_close(t, pooled.view(20, 3, -1))
    t_only, none = padded_attention_pass(gamma, beta, bags, bucket_scores=bucket_scores)
    assert none is None and torch.equal(t_only, t)  # asking for statistics does not change the scores
    assert padded_attention_pass(gamma, None, bags, summarise, 3, bucket_scores)[0] is None


@pytest.mark.parametrize("ragged", [True, False])
def test_predict_with_instance_weights_gives_the_separate_calls_numbers(ragged):
    """One pass for bag predictions and instance weights gives exactly what predict and instance_weights
    (and instance_scores) give on their own."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, 30) if ragged else np.full(30, 12)
    bags = Bags.from_list([torch.from_numpy(rng.standard_normal((k, 5), dtype=np.float32)) for k in sizes])
    y = rng.integers(0, 3, (30, 2)).astype(np.float32)
    model = MixMIL(likelihood="binomial", n_trials=2, n_epochs=3, batch_size=8, progress=False).fit(bags, y)
    prediction, weights = model.predict_with_instance_weights(bags, credible_level=0.9)
    alone = model.predict(bags)
    for field in ("bag_effect", "linear_predictor", "mean"):
        np.testing.assert_array_equal(getattr(prediction, field), getattr(alone, field))
    alone_weights = model.instance_weights(bags, credible_level=0.9)
    for field in ("mean", "lower", "upper", "offsets"):
        np.testing.assert_array_equal(getattr(weights, field), getattr(alone_weights, field))
    prediction, scores = model.predict_with_instance_scores(bags)
    np.testing.assert_array_equal(prediction.mean, alone.mean)
    np.testing.assert_array_equal(scores, model.instance_scores(bags))
    np.testing.assert_array_equal(scores, weights.mean)
    with pytest.raises(ValueError, match="credible_level"):
        model.instance_weights(bags, credible_level=1.0)
