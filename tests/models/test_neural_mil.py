import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow import Bags
from mixmil_workflow.metrics import spearman_per_output
from mixmil_workflow.models import DSMIL, AdditiveMIL, AttentionMIL, BayesMIL, regress_out_covariates
from mixmil_workflow.models.neural import Dropout, dropout
from tests.support.data import ragged_bags

FAST = dict(n_epochs=2, batch_size=32, progress=False, device="cpu")


MODELS = {
    "abmil": lambda **kw: AttentionMIL(gated=False, **kw),
    "gated_abmil": lambda **kw: AttentionMIL(gated=True, **kw),
    "dsmil": lambda **kw: DSMIL(**kw),
    "bayes_mil": lambda **kw: BayesMIL(**kw),
    # Additive MIL's instance scores are logit contributions; the attention weights are the normalised ones.
    "additive_mil": lambda **kw: AdditiveMIL(**{"instance_score": "attention", **kw}),
}
LOADERS = {
    "abmil": AttentionMIL,
    "gated_abmil": AttentionMIL,
    "dsmil": DSMIL,
    "bayes_mil": BayesMIL,
    "additive_mil": AdditiveMIL,
}
# DSMIL's reference optimiser (Adam betas (0.5, 0.9), two half-weighted losses, cosine decay) learns slower;
# Bayes-MIL's sigmoid attention starts uniform and its VDO weights start at N(0, 0.01^2).
EASY_EPOCHS = {"abmil": 30, "gated_abmil": 30, "dsmil": 200, "bayes_mil": 60, "additive_mil": 30}


@pytest.fixture(params=list(MODELS))
def name(request):
    return request.param


def _easy_binary(seed=0, n=160, i=12, q=6):
    """One marker instance per positive bag: an easy task for attention MIL."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, i, q)).astype(np.float32)
    x[y == 1, 0, 0] += 4.0
    return x, y


def test_output_shapes_and_normalised_attention(small_sim, name):
    model = MODELS[name](**FAST).fit(small_sim.bags("train"), small_sim.y_train)
    test = small_sim.bags("test")
    pred = model.predict(test)
    assert pred.bag_effect.shape == (100, 2) and pred.mean.shape == (100, 2)
    assert np.all((pred.mean >= 0) & (pred.mean <= 2))
    scores = model.instance_scores(test)
    assert scores.shape == (test.n_instances, 2)
    np.testing.assert_allclose(scores.reshape(100, -1, 2).sum(1), 1.0, rtol=1e-5)


def test_permutation_invariance_within_bags(small_sim, name):
    # Bayes-MIL predicts by Monte Carlo over per-instance noise, so it is permutation invariant only in
    # distribution; its deterministic pass (mc_samples=0) must be exactly invariant.
    extra = {"mc_samples": 0} if name == "bayes_mil" else {}
    model = MODELS[name](**FAST, **extra).fit(small_sim.bags("train"), small_sim.y_train)
    x = small_sim.x_test
    perm = np.random.default_rng(1).permutation(x.shape[1])
    a, b = model.predict(Bags.from_dense(x)), model.predict(Bags.from_dense(x[:, perm]))
    np.testing.assert_allclose(a.bag_effect, b.bag_effect, rtol=1e-5, atol=1e-6)


def test_short_fit_beats_chance_on_an_easy_task(name):
    x, y = _easy_binary()
    model = MODELS[name](
        likelihood="bernoulli", n_trials=None, n_epochs=EASY_EPOCHS[name], progress=False, device="cpu", lr=2e-3
    )
    model.fit(Bags.from_dense(x[:120]), y[:120])
    test = Bags.from_dense(x[120:])
    accuracy = ((model.predict(test).mean[:, 0] > 0.5) == y[120:]).mean()
    assert accuracy > 0.8
    # The instance scores find the marker instance of positive test bags.
    weights = model.instance_scores(test).reshape(40, -1)
    assert (weights[y[120:] == 1].argmax(1) == 0).mean() > 0.8


def test_seeds_and_save_load(tmp_path, small_sim, name):
    a = MODELS[name](seed=3, **FAST).fit(small_sim.bags("train"), small_sim.y_train)
    b = MODELS[name](seed=3, **FAST).fit(small_sim.bags("train"), small_sim.y_train)
    c = MODELS[name](seed=4, **FAST).fit(small_sim.bags("train"), small_sim.y_train)
    test = small_sim.bags("test")
    np.testing.assert_array_equal(a.predict(test).bag_effect, b.predict(test).bag_effect)
    assert not np.array_equal(a.predict(test).bag_effect, c.predict(test).bag_effect)
    a.save(tmp_path / "m.pt")
    loaded = LOADERS[name].load(tmp_path / "m.pt")
    np.testing.assert_array_equal(a.predict(test).mean, loaded.predict(test).mean)
    np.testing.assert_array_equal(a.instance_scores(test), loaded.instance_scores(test))


def test_categorical_labels_and_ragged_bags(name):
    rng = np.random.default_rng(0)
    bags_list = ragged_bags(seed=2, n_bags=90, q=5, max_size=10)
    y = rng.integers(0, 3, 90)
    for b, label in zip(bags_list, y, strict=True):
        b[0, :3] += 3.0 * np.eye(3)[label]
    model = MODELS[name](
        likelihood="categorical", n_trials=None, n_epochs=EASY_EPOCHS[name] + 10, progress=False, device="cpu", lr=2e-3
    )
    pred = model.fit(Bags.from_list(bags_list), y).predict(Bags.from_list(bags_list))
    assert pred.mean.shape == (90, 3) and np.allclose(pred.mean.sum(1), 1, atol=1e-5)
    assert (pred.mean.argmax(1) == y).mean() > 0.6


def test_regressing_out_covariates_removes_their_effect_on_bag_means():
    rng = np.random.default_rng(0)
    covariate = rng.standard_normal(50)
    x = rng.standard_normal((50, 4, 3)) + 2.0 * covariate[:, None, None]
    bags = Bags.from_dense(x, dtype=torch.float64)
    adjusted, coef = regress_out_covariates(bags, covariate)
    means = adjusted.mean_pool().numpy()
    assert np.abs(np.corrcoef(means[:, 0], covariate)[0, 1]) < 1e-6
    np.testing.assert_allclose(coef[1], 2.0, atol=0.3)
    # New bags reuse the training coefficients.
    again, _ = regress_out_covariates(bags, covariate, coef, fitting=False)
    np.testing.assert_allclose(again.x.numpy(), adjusted.x.numpy())
    # Without covariates the bags are used as given (no copy); mixing the two is an error.
    same, none = regress_out_covariates(bags, None)
    assert same is bags and none is None
    with pytest.raises(ValueError, match="fitted with covariates"):
        regress_out_covariates(bags, None, coef, fitting=False)
    with pytest.raises(ValueError, match="fitted without covariates"):
        regress_out_covariates(bags, covariate, None, fitting=False)


@pytest.mark.parametrize("name", ["abmil", "gated_abmil"])
def test_fit_on_the_simulation_correlates_with_the_truth(small_sim, name):
    # DSMIL's max-instance design learns the diffuse simulated signal slowly; its simulation accuracy is
    # measured by the workflow rather than asserted on a 300-bag toy.
    model = MODELS[name](n_epochs=30, progress=False, device="cpu").fit(small_sim.bags("train"), small_sim.y_train)
    rho = spearman_per_output(model.predict(small_sim.bags("test")).bag_effect, small_sim.u_test)
    assert rho.mean() > 0.2


# The paper's Table 1: parameter counts on the genetics data (Q = 30, encoder width 30, one output).
TABLE_1_COUNTS = {
    "abmil": (1922, 0),
    "gated_abmil": (2852, 0),
    "dsmil": (992, 0),
    "bayes_mil": (2883, 1890),
}


@pytest.mark.parametrize("name", list(TABLE_1_COUNTS))
def test_parameter_counts_match_the_papers_table_1(name):
    x = np.random.default_rng(0).standard_normal((12, 5, 30))
    y = np.array([0, 1, 2] * 4)
    model = MODELS[name](n_epochs=0, progress=False, device="cpu").fit(Bags.from_dense(x), y)
    counts = model.n_parameters()
    assert (counts["likelihood"], counts["variational"]) == TABLE_1_COUNTS[name]
    # P outputs are P stacked networks: P times the parameters.
    three = MODELS[name](n_epochs=0, progress=False, device="cpu").fit(Bags.from_dense(x), np.stack([y] * 3, 1))
    assert three.n_parameters()["likelihood"] == 3 * TABLE_1_COUNTS[name][0]


def test_bayes_mil_predictions_average_seeded_stochastic_passes(small_sim):
    model = BayesMIL(**FAST).fit(small_sim.bags("train"), small_sim.y_train)
    test = small_sim.bags("test")
    # Seeded Monte Carlo: the same model predicts the same numbers every time ...
    np.testing.assert_array_equal(model.predict(test).bag_effect, model.predict(test).bag_effect)
    # ... the single passes differ (weight noise, attention noise, dropout) ...
    model.config.mc_samples = 1
    one = model.predict(test).bag_effect
    model.config.seed += 1
    assert not np.allclose(one, model.predict(test).bag_effect)
    # ... and the MC mean converges towards the average network as samples grow: more samples, smaller
    # spread between two differently seeded estimates.
    spread = []
    for n in (2, 64):
        model.config.mc_samples = n
        estimates = []
        for seed in (10, 11):
            model.config.seed = seed
            estimates.append(model.predict(test).bag_effect)
        spread.append(np.abs(estimates[0] - estimates[1]).mean())
    assert spread[1] < 0.5 * spread[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.25, 0.5, 0.9, 1.0])
def test_dropout_gives_f_dropouts_values_gradients_and_draws(dtype, p):
    x = torch.randn(10, 300, 30, dtype=dtype).transpose(0, 1)  # permuted, as the stacked nets' activations
    results = []
    for fn in (lambda t: F.dropout(t, p, training=True), lambda t: dropout(t, p)):
        leaf = x.clone().requires_grad_()
        torch.manual_seed(7)
        out = fn(leaf)
        out.backward(torch.arange(out.numel(), dtype=dtype).view_as(out))
        results.append((out.detach(), leaf.grad, torch.rand(4)))  # the generator's next numbers
    for ours, reference in zip(results[1], results[0], strict=True):
        assert torch.equal(ours, reference)
    kept = (results[1][0] != 0).float().mean().item()
    assert kept == 0.0 if p == 1 else abs(kept - (1 - p)) < 0.02


def test_dropout_module_follows_train_and_eval_modes():
    layer, x = Dropout(0.5), torch.randn(50, 20)
    assert torch.equal(layer.eval()(x), x)
    torch.manual_seed(1)
    trained = layer.train()(x)
    torch.manual_seed(1)
    assert torch.equal(trained, nn.Dropout(0.5)(x))
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(x, 1.5)


def _torchs_optimisers(monkeypatch):
    """The neural baselines' optimiser, schedule and dropout as torch ships them."""
    import mixmil_workflow.models.bayes_mil as bayes_mil
    from mixmil_workflow.models.neural import NeuralMIL

    monkeypatch.setattr(bayes_mil, "dropout", lambda t, p: F.dropout(t, p, training=True))
    monkeypatch.setattr(
        NeuralMIL,
        "make_optimiser",
        lambda self, params: torch.optim.Adam(
            params, lr=self.config.lr, weight_decay=self.config.weight_decay, fused=True
        ),
    )
    monkeypatch.setattr(
        DSMIL,
        "make_optimiser",
        lambda self, params: torch.optim.Adam(
            params, lr=self.config.lr, betas=(0.5, 0.9), weight_decay=self.config.weight_decay, fused=True
        ),
    )
    monkeypatch.setattr(
        DSMIL,
        "make_scheduler",
        lambda self, opt: torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=self.config.n_epochs, eta_min=self.config.min_lr
        ),
    )


def test_fits_as_with_torchs_adam_schedule_and_dropout(small_sim, name, monkeypatch):
    """The faster optimiser, schedule and dropout change no number: a whole fit and its predictions are
    bit-identical with torch.optim.Adam(fused=True), CosineAnnealingLR (DSMIL) and F.dropout in their places."""
    train, test = small_sim.bags("train"), small_sim.bags("test")
    settings = {**FAST, "n_epochs": 4}  # DSMIL's rate decays over these
    ours = MODELS[name](**settings).fit(train, small_sim.y_train)
    _torchs_optimisers(monkeypatch)
    reference = MODELS[name](**settings).fit(train, small_sim.y_train)
    np.testing.assert_array_equal(ours.history, reference.history)
    np.testing.assert_array_equal(ours.predict(test).bag_effect, reference.predict(test).bag_effect)


def test_bayes_mil_ard_penalty_follows_log_alpha():
    from mixmil_workflow.models.bayes_mil import StackedLinearVDO

    layer = StackedLinearVDO(2, 4, 3, ard_init=-1.0, generator=torch.Generator().manual_seed(0))
    low = layer.ard_kl().item()
    with torch.no_grad():
        layer.log_alpha.fill_(2.0)
    # Larger dropout rates (log alpha) are cheaper under the ARD prior.
    assert layer.ard_kl().item() < low
    # Gradients reach log alpha through the local reparameterisation and the penalty.
    x = torch.randn(7, 2, 4)
    (layer(x, stochastic=True).sum() + layer.ard_kl()).backward()
    assert layer.log_alpha.grad is not None and torch.isfinite(layer.log_alpha.grad).all()


def test_additive_mil_contributions_sum_to_the_bag_logits(small_sim):
    model = AdditiveMIL(**FAST).fit(small_sim.bags("train"), small_sim.y_train)
    test = small_sim.bags("test")
    contributions = model.instance_scores(test).reshape(100, -1, 2)
    np.testing.assert_allclose(contributions.sum(1), model.predict(test).bag_effect, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="instance_score"):
        AdditiveMIL(instance_score="gradients")


def test_huber_loss_regresses_the_label(small_sim):
    model = AttentionMIL(loss="huber", n_epochs=30, progress=False, device="cpu")
    model.fit(small_sim.bags("train"), small_sim.y_train)
    pred = model.predict(small_sim.bags("test"))
    np.testing.assert_array_equal(pred.mean, pred.bag_effect)  # the output is the predicted label
    assert spearman_per_output(pred.bag_effect, small_sim.u_test).mean() > 0.2
    assert abs(pred.mean.mean() - small_sim.y_train.mean()) < 0.3  # on the label scale, not the logit scale
    with pytest.raises(ValueError, match="categorical labels need loss 'likelihood'"):
        AttentionMIL(loss="huber", likelihood="categorical", n_trials=None)
    with pytest.raises(ValueError, match="loss must be one of"):
        AttentionMIL(loss="mse")


def test_equal_size_bags_give_the_networks_outputs_of_the_ragged_path(name):
    """Equal-size bags are pooled through a dense view, bags of different sizes through segment ops: the
    same network gives the same outputs for the same bags either way (to float rounding)."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((24, 8, 5)).astype(np.float32), rng.integers(0, 3, (24, 2)).astype(float)
    extra = {"mc_samples": 0} if name == "bayes_mil" else {}
    model = MODELS[name](**FAST, **extra).fit(Bags.from_dense(x), y)
    equal = Bags.from_dense(x)
    # The same bags followed by one bag of another size, which sends them through the segment ops.
    ragged = Bags.from_list([*x, rng.standard_normal((3, 5)).astype(np.float32)])
    assert equal.is_equal_size and not ragged.is_equal_size
    dense_pred, ragged_pred = model.predict(equal), model.predict(ragged)
    np.testing.assert_allclose(dense_pred.bag_effect, ragged_pred.bag_effect[:24], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.instance_scores(equal), model.instance_scores(ragged)[: equal.n_instances], rtol=1e-5, atol=1e-7
    )
