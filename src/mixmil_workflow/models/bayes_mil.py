"""Bayes-MIL (Cui et al., ICLR 2023), the "Bayes-MIL-Vis" variant the MixMIL paper compares against:
Bayesian attention without the slide-dependent patch regulariser and without the CRF (paper App. B.1).

Per network (written from the equations in ``models.md`` section 3, not from the GPL reference code):

* instance encoder h_i = ReLU(W_e x_i + b_e) (an ordinary linear layer, width "Dim. Encoder");
* gated attention of variational-dropout linear layers (``VDO``; local reparameterisation, an ARD prior
  per weight): a_i = tanh(VDO_a h_i), g_i = sigmoid(VDO_b h_i), [mu_i, logvar_i] = VDO_c(a_i * g_i);
* stochastic attention z_i = mu_i + eps * exp(logvar_i / 2), alpha_i = sigmoid(z_i) (not a softmax);
* bag embedding M = sum_i alpha_i h_i / sum_i alpha_i and bag logits VDO_cls(M);
* loss: the bag negative log-likelihood + ``kl_weight`` * ARD-KL of every VDO layer.

As the reference, the network is stochastic at prediction time too (weight noise, attention noise and
dropout) and predictions average ``mc_samples`` passes; these passes are seeded from the model seed, so
predicting twice gives the same numbers. ``mc_samples = 0`` gives one deterministic pass (weight means,
z = mu, no dropout). Instance scores are the pooling weights alpha_i / sum_j alpha_j (MC mean), which
sum to one over a bag like the other attention models' weights.

With the paper's encoder width 30 and Q = 30 this network has exactly the 2,883 likelihood (mean)
parameters and 1,890 variational (log alpha) parameters of the paper's Table 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.neural import NetOutput, NeuralMIL, dropout, stacked_linear, standard_normal
from mixmil_workflow.models.options import BayesMILConfig

# Molchanov et al. (2017) style approximation constants used by the reference's ARD-KL.
_K1, _K2, _K3 = 0.6134, 0.2026, 0.7126


class StackedLinearVDO(nn.Module):
    """``n_nets`` independent variational-dropout linear layers with one log alpha per weight."""

    def __init__(self, n_nets: int, fan_in: int, fan_out: int, ard_init: float, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_nets, fan_in, fan_out).normal_(0.0, 0.01, generator=generator))
        self.bias = nn.Parameter(torch.zeros(n_nets, fan_out))
        self.log_alpha = nn.Parameter(torch.full((n_nets, fan_in, fan_out), float(ard_init)))

    def forward(self, x: torch.Tensor, stochastic: bool) -> torch.Tensor:
        """x: (rows, nets, fan_in) -> (rows, nets, fan_out)."""
        mean = stacked_linear(x, self.weight)
        if stochastic:
            # Local reparameterisation: sample the pre-activation, whose variance is sum_i x_i^2 alpha w^2.
            var = stacked_linear(x * x, self.log_alpha.exp() * self.weight * self.weight) + 1e-8
            mean = mean + standard_normal(mean) * var.sqrt()
        return mean + self.bias

    def ard_kl(self) -> torch.Tensor:
        """The reference's ARD penalty summed over networks: per network, -(sum over outputs of the
        mean over inputs of k(log alpha))."""
        la = self.log_alpha
        k = -0.5 * torch.log1p(torch.exp(-la)) + _K1 * torch.exp(-((_K2 + _K3 * la) ** 2))
        return -k.mean(1).sum()


class StackedBayesMILNet(nn.Module):
    def __init__(self, n_nets: int, n_features: int, config: BayesMILConfig, n_logits: int):
        super().__init__()
        gen = torch.Generator().manual_seed(config.seed)
        hidden, attention = config.hidden_dim, config.attention_dim
        # Xavier-normal encoder weights and zero bias (reference initialisation of ordinary linear layers).
        std = math.sqrt(2.0 / (n_features + hidden))
        self.enc_w = nn.Parameter(torch.empty(n_nets, n_features, hidden).normal_(0.0, std, generator=gen))
        self.enc_b = nn.Parameter(torch.zeros(n_nets, hidden))
        self.att_a = StackedLinearVDO(n_nets, hidden, attention, config.attention_ard_init, gen)
        self.att_b = StackedLinearVDO(n_nets, hidden, attention, config.attention_ard_init, gen)
        self.att_c = StackedLinearVDO(n_nets, attention, 2, config.attention_ard_init, gen)
        self.classifier = StackedLinearVDO(n_nets, hidden, n_logits, config.classifier_ard_init, gen)
        self.dropout = config.dropout
        self.stochastic = True  # the reference samples in training and at prediction time

    def vdo_layers(self) -> list[StackedLinearVDO]:
        return [self.att_a, self.att_b, self.att_c, self.classifier]

    def ard_kl(self) -> torch.Tensor:
        return sum(layer.ard_kl() for layer in self.vdo_layers())

    def _drop(self, t: torch.Tensor) -> torch.Tensor:
        return dropout(t, self.dropout) if self.stochastic and self.dropout > 0 else t

    def forward(self, bags: Bags) -> NetOutput:
        s = self.stochastic
        h = self._drop(F.relu(torch.einsum("iq,nqh->inh", bags.x, self.enc_w) + self.enc_b))
        a = self._drop(torch.tanh(self.att_a(h, s)))
        g = self._drop(torch.sigmoid(self.att_b(h, s)))
        mu, logvar = self.att_c(a * g, s).unbind(-1)  # (instances, nets) each
        z = mu + standard_normal(mu) * torch.exp(0.5 * logvar) if s else mu
        alpha = torch.sigmoid(z)
        norm = bags.sum(alpha)  # (bags, nets)
        pooled = bags.sum(alpha.unsqueeze(-1) * h) / norm.unsqueeze(-1)
        weights = alpha / norm.index_select(0, bags.index)
        return NetOutput(self.classifier(pooled, s), weights)


class BayesMIL(NeuralMIL):
    """Bayes-MIL-Vis; instance scores are the normalised (MC-mean) sigmoid attention weights."""

    config_class = BayesMILConfig
    format = "mixmil_workflow.BayesMIL/1"
    display_name = "Bayes-MIL"

    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module:
        return StackedBayesMILNet(n_nets, n_features, self.config, n_logits)

    def loss(self, out: NetOutput, y: torch.Tensor) -> torch.Tensor:
        return self.bag_loss(out.logits, y) + self.config.kl_weight * self.net.ard_kl()

    def run_net(self, bags: Bags) -> NetOutput:
        """Average of ``mc_samples`` seeded stochastic passes (or one deterministic pass)."""
        n = self.config.mc_samples
        if n == 0:
            self.net.stochastic = False
            try:
                return self.net(bags)
            finally:
                self.net.stochastic = True
        device = bags.x.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.config.seed)
            logits = scores = 0.0
            for _ in range(n):
                out = self.net(bags)
                logits, scores = logits + out.logits, scores + out.instance_scores
        return NetOutput(logits / n, scores / n)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        variational = [layer.log_alpha for layer in self.net.vdo_layers()]
        ids = {id(p) for p in variational}
        return {"likelihood": [p for p in self.net.parameters() if id(p) not in ids], "variational": variational}
