import numpy as np
import pytest

from mixmil_workflow.bags import Bags
from mixmil_workflow.design import CovariateError, design_matrix
from mixmil_workflow.metrics import spearman_per_output
from mixmil_workflow.models.glmm import GLMM


def test_binomial_glmm_predicts_mean_pooled_signal(small_sim):
    glmm = GLMM("binomial", n_trials=2).fit(small_sim.bags("train"), small_sim.y_train)
    rho = spearman_per_output(glmm.linear_predictor(small_sim.bags("test")), small_sim.u_test)
    assert rho.mean() > 0.3
    assert glmm.predict(small_sim.bags("test")).mean.max() <= 2


def test_instance_level_glmm_fits_instance_rows_and_predicts_bag_means(small_sim):
    train = small_sim.bags("train")
    glmm = GLMM("binomial", n_trials=2, instance_level=True).fit(train, small_sim.y_train)
    mean_level = GLMM("binomial", n_trials=2).fit(train, small_sim.y_train)
    test = small_sim.bags("test")
    rho = spearman_per_output(glmm.linear_predictor(test), small_sim.u_test)
    assert rho.mean() > 0.3
    # Fitted on 20x more (correlated) rows, the instance-level model is a different fit of the same form.
    assert not np.allclose(glmm.params.beta_mean, mean_level.params.beta_mean)
    # The bag prediction is the mean of the instances' linear predictors.
    eta_instances = glmm.params.alpha[0] + (test.x.double().numpy() - glmm.params.center) @ glmm.params.beta_mean
    np.testing.assert_allclose(eta_instances.reshape(100, -1, 2).mean(1), glmm.linear_predictor(test), atol=1e-8)
    with pytest.raises(TypeError, match="needs Bags"):
        GLMM("binomial", n_trials=2, instance_level=True).fit(test.mean_pool().numpy(), small_sim.y_test)


def test_gaussian_lmm_recovers_linear_signal():
    rng = np.random.default_rng(0)
    xm = rng.standard_normal((400, 8))
    beta = rng.standard_normal((8, 2))
    covariate = rng.standard_normal(400)
    y = 1.5 + 0.7 * covariate[:, None] + xm @ beta + 0.5 * rng.standard_normal((400, 2))
    glmm = GLMM("gaussian").fit(xm, y, covariates=covariate)
    np.testing.assert_allclose(glmm.params.alpha[1], [0.7, 0.7], atol=0.1)
    np.testing.assert_allclose(glmm.params.residual_sd, [0.5, 0.5], atol=0.08)
    np.testing.assert_allclose(glmm.params.beta_mean, beta, atol=0.1)


def test_categorical_glmm_separates_classes():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    xm = rng.standard_normal((300, 5)) + np.eye(3, 5)[y] * 2.0
    glmm = GLMM("categorical").fit(xm, y)
    acc = (glmm.predict(xm).mean.argmax(1) == y).mean()
    assert acc > 0.8


def test_constant_covariate_is_rejected_with_its_name():
    with pytest.raises(CovariateError, match=r"\['plate'\] are constant"):
        design_matrix(np.ones((5, 1)), 5, names=["plate"])


@pytest.mark.parametrize("likelihood", ["binomial", "gaussian"])
def test_bags_with_identical_means_give_finite_small_effects_and_a_warning(likelihood):
    rng = np.random.default_rng(0)
    xs = []
    for _ in range(40):
        x = rng.normal(size=(6, 3)).astype(np.float32)
        xs.append(x - x.mean(0))  # every bag mean is zero (up to float32 rounding)
    y = rng.integers(0, 3, size=(40, 1)).astype(np.float32)
    with pytest.warns(UserWarning, match="bag mean embeddings do not vary"):
        glmm = GLMM(likelihood, n_trials=2 if likelihood == "binomial" else None).fit(Bags.from_list(xs), y)
    effect = (glmm.linear_predictor(Bags.from_list(xs)) - glmm.params.alpha[0]).ravel()
    assert np.isfinite(glmm.params.beta_mean).all() and np.abs(effect).max() < 1e-3
