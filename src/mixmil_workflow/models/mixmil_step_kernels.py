"""MixMIL's CPU training step around the attention pooling, as three numba kernels.

At the simulation's size (P = 10 outputs, 8 posterior samples, 64 bags of 50 instances x 30 features) a
step is the pooling's two matrix products and softmax (about half of it) and some 150 tiny tensor ops:
sampling theta, the standardisation of Appendix A, the binomial likelihood's gradient, the
standardisation's backward and the KL's. Each of those ops touches a few thousand numbers and costs its
dispatch (about 5 microseconds on the 2-core CPU), so the tiny part took as long as the matrix products.
Neither torch.compile (its own random draws, a compile per fit job) nor batching gets it lower; three
loops over the same numbers do (benchmarks/investigations/mixmil_cpu_step). The noise comes from the
caller's torch generator, so a fit draws the same numbers as the torch step (``MixMILModule``'s
``training_step`` with ``fused_cpu_step=False``, the GPU's path, which the tests hold these kernels to).

Sums are accumulated in double and stored in the parameters' precision (float32), so the kernels'
gradients agree with the torch step's to rounding, not bit for bit. fastmath is limited to reassociation
and contraction (vector sums and fused multiply-adds): NaN and infinity keep their meaning, so a
diverging fit still stops at the training loop's non-finite check. numba compiles the kernels once per
environment (about 4 s on the 2-core CPU) and caches them (``cache=True``; ``NUMBA_CACHE_DIR`` moves the cache).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# error_model="numpy": a division by zero gives inf or NaN as in the torch step (numba's default raises)
KERNEL = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy")
MIN_SD = 1e-8  # as the torch step's clamp of a minibatch's sd of t


@numba.njit(**KERNEL)
def sample_theta(mu, log_sd, tril, eps, full_rank, theta, directions):  # pragma: no cover - compiled
    """theta = mu + L eps per output (L: sd on the diagonal, ``tril``'s strict lower triangle when
    ``full_rank``) into ``theta`` (S, P, 2Q), and the same values as stacked directions (2, S, P, Q):
    the S x P gammas, then the betas, as the pooling takes them."""
    n_samples, n_outputs, dim = eps.shape
    half = dim // 2
    for p in range(n_outputs):
        for i in range(dim):
            sd = math.exp(np.float64(log_sd[p, i]))
            for s in range(n_samples):
                acc = np.float64(mu[p, i]) + sd * eps[s, p, i]
                if full_rank:
                    for j in range(i):
                        acc += np.float64(tril[p, i, j]) * eps[s, p, j]
                theta[s, p, i] = acc
                directions[i // half, s, p, i % half] = acc


@numba.njit(**KERNEL)
def standardise_binomial(t, theta, fixed, y, n_trials, grad_t, grad_fixed, effect, grad_effect):  # pragma: no cover
    """Forward and backward of  eta = fixed + b (t - m) / sd  and the binomial NLL (label constant left
    out), for pooled scores ``t`` (S, P, B), samples ``theta`` (S, P, 2Q), fixed effects F alpha (B, P)
    and labels ``y`` (B, P), NaN where missing (``Binomial.prepare_labels`` lets NaN through only then).

    Writes dNLL/dt into ``grad_t`` (S, P, B), dNLL/d(F alpha) into ``grad_fixed`` (B, P), b = RMS(beta)
    into ``effect`` and dNLL/db into ``grad_effect`` (S, P); returns the NLL, a mean over bags and
    samples of the sum over outputs (as ``Binomial.log_prob``)."""
    n_samples, n_outputs, n_bags = t.shape
    half = theta.shape[2] // 2
    scale = 1.0 / (n_bags * n_samples)
    grad_fixed[:] = 0.0
    nll = 0.0
    for s in range(n_samples):
        for p in range(n_outputs):
            squares = 0.0
            for j in range(half):
                squares += np.float64(theta[s, p, half + j]) ** 2
            b = math.sqrt(squares / half)
            mean = 0.0
            for i in range(n_bags):
                mean += t[s, p, i]
            mean /= n_bags
            var = 0.0
            for i in range(n_bags):
                var += (t[s, p, i] - mean) ** 2
            raw_sd = math.sqrt(var / (n_bags - 1))
            sd = max(raw_sd, MIN_SD)
            g_b = 0.0
            log_terms = 1.0
            g_sum = 0.0
            g_dot = 0.0
            for i in range(n_bags):
                xhat = (t[s, p, i] - mean) / sd
                eta = fixed[i, p] + b * xhat
                label = y[i, p]
                if math.isnan(label):
                    g_eta = 0.0
                else:
                    # n log s(eta) - (n - y) eta, with log s(eta) = min(eta, 0) - log(1 + exp(-|eta|)) (torch's
                    # form); the logs are taken of running products of the 1 + exp(-|eta|) (each in (1, 2]),
                    # once per row or before a product could overflow: a log per entry took most of the time
                    tail = math.exp(-abs(eta))
                    nll -= n_trials * min(eta, 0.0) - (n_trials - label) * eta
                    log_terms *= 1.0 + tail
                    if log_terms > 1e290:
                        nll += n_trials * math.log(log_terms)
                        log_terms = 1.0
                    sigmoid = 1.0 / (1.0 + tail) if eta >= 0.0 else tail / (1.0 + tail)
                    g_eta = (n_trials * sigmoid - label) * scale
                grad_fixed[i, p] += g_eta
                g_b += g_eta * xhat
                g_xhat = g_eta * b
                grad_t[s, p, i] = g_xhat
                g_sum += g_xhat
                g_dot += g_xhat * xhat
            nll += n_trials * math.log(log_terms)
            # batch norm's backward; no sd term where the sd was clamped
            along = g_dot / (n_bags - 1) if raw_sd >= MIN_SD else 0.0
            g_mean = g_sum / n_bags
            for i in range(n_bags):
                xhat = (t[s, p, i] - mean) / sd
                grad_t[s, p, i] = (grad_t[s, p, i] - g_mean - xhat * along) / sd
            effect[s, p] = b
            grad_effect[s, p] = g_b
    return nll * scale


@numba.njit(**KERNEL)
def kl_backward(grad_directions, theta, eps, effect, grad_effect, mu, log_sd, tril, full_rank, log_sigma, kl_weight,
                grad_mu, grad_log_sd, grad_tril, grad_log_sigma):  # pragma: no cover  # fmt: skip
    """The gradients of  sum <dNLL/dtheta, theta(eps)> + kl_weight * KL  (``GaussianPosterior.
    backward_with_kl``'s) into ``grad_mu``, ``grad_log_sd`` (P, 2Q), ``grad_tril`` (P, 2Q, 2Q; zero off
    the strict lower triangle) and ``grad_log_sigma`` (P, 2); returns the KL summed over outputs.

    dNLL/dtheta is the pooling's ``grad_directions`` (2, S, P, Q) plus, for beta, the effect scale's
    path dNLL/db * beta / (Q b)."""
    n_samples, n_outputs, dim = eps.shape
    half = dim // 2
    grad_theta = np.empty((n_samples, dim))
    row = np.empty(dim)
    kl_total = 0.0
    for p in range(n_outputs):
        for s in range(n_samples):
            to_beta = grad_effect[s, p] / (half * effect[s, p])
            for j in range(half):
                grad_theta[s, j] = grad_directions[0, s, p, j]
                grad_theta[s, half + j] = grad_directions[1, s, p, j] + to_beta * theta[s, p, half + j]
        log_sigma_g, log_sigma_b = np.float64(log_sigma[p, 0]), np.float64(log_sigma[p, 1])
        precision_g, precision_b = math.exp(-2.0 * log_sigma_g), math.exp(-2.0 * log_sigma_b)
        second_g, second_b = 0.0, 0.0
        log_det = 0.0
        for i in range(dim):
            precision = precision_g if i < half else precision_b
            log_sd_i = np.float64(log_sd[p, i])
            sd = math.exp(log_sd_i)
            log_det += 2.0 * log_sd_i
            g_mu = 0.0
            for s in range(n_samples):
                g_mu += grad_theta[s, i]
            grad_mu[p, i] = g_mu + kl_weight * mu[p, i] * precision
            marginal = sd * sd
            if full_rank:
                # d/dL_ij = sum_s g_si eps_sj + w pi_i L_ij, j <= i
                row[: i + 1] = 0.0
                for s in range(n_samples):
                    g = grad_theta[s, i]
                    for j in range(i + 1):
                        row[j] += g * eps[s, p, j]
                for j in range(i):
                    marginal += np.float64(tril[p, i, j]) ** 2
                    grad_tril[p, i, j] = row[j] + kl_weight * precision * tril[p, i, j]
                grad_tril[p, i, i:] = 0.0
                grad_log_sd[p, i] = (row[i] + kl_weight * precision * sd) * sd - kl_weight
            else:
                g_sd = 0.0
                for s in range(n_samples):
                    g_sd += grad_theta[s, i] * eps[s, p, i]
                grad_log_sd[p, i] = g_sd * sd + kl_weight * (precision * marginal - 1.0)
            if i < half:
                second_g += marginal + np.float64(mu[p, i]) ** 2
            else:
                second_b += marginal + np.float64(mu[p, i]) ** 2
        scaled_g, scaled_b = second_g * precision_g, second_b * precision_b
        kl_total += 0.5 * (scaled_g + scaled_b - dim + 2.0 * half * (log_sigma_g + log_sigma_b) - log_det)
        grad_log_sigma[p, 0] = kl_weight * (half - scaled_g)
        grad_log_sigma[p, 1] = kl_weight * (half - scaled_b)
    return kl_total
