"""Additive MIL (Javed et al., NeurIPS 2022) in its attention-MIL form, the paper's "Additive ABMIL".

Per network: the ABMIL encoder and attention give h_i and a_i (softmax over the bag); each attention-scaled
instance gets its own logits from an MLP, p_i = psi(a_i h_i) with psi = Linear -> ReLU -> Linear
(``classifier_hidden_dim`` wide), and the bag logits are their plain sum, y_hat = sum_i p_i. Because the
pooling is a sum of instance logits, p_{i,c} is exactly instance i's contribution to the class-c bag
logit: the model's instance scores (``instance_score = "contribution"``, the heatmap Javed et al.
recommend). ``instance_score = "attention"`` returns the attention weights instead.

The MLP psi must be nonlinear: with a linear psi, sum_i psi(a_i h_i) = psi(sum_i a_i h_i) + (N - 1) b would be
ABMIL again. The paper uses Additive MIL for the microscopy task only (Tables 2, C.5, C.6).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.attention_mil import StackedAttention
from mixmil_workflow.models.neural import NetOutput, NeuralMIL, stacked_linear, stacked_uniform
from mixmil_workflow.models.options import AdditiveMILConfig


class StackedAdditiveNet(nn.Module):
    def __init__(self, n_nets: int, n_features: int, config: AdditiveMILConfig, n_logits: int):
        super().__init__()
        gen = torch.Generator().manual_seed(config.seed)
        hidden, width = config.hidden_dim, config.classifier_hidden_dim
        self.attention = StackedAttention(n_nets, n_features, hidden, config.attention_dim, False, gen)
        self.psi1_w = stacked_uniform(n_nets, hidden, hidden, width, generator=gen)
        self.psi1_b = stacked_uniform(n_nets, hidden, width, generator=gen)
        self.psi2_w = stacked_uniform(n_nets, width, width, n_logits, generator=gen)
        self.psi2_b = stacked_uniform(n_nets, width, n_logits, generator=gen)
        self.return_attention = config.instance_score == "attention"

    def forward(self, bags: Bags) -> NetOutput:
        h, weights = self.attention(bags)
        hidden = F.relu(stacked_linear(weights.unsqueeze(-1) * h, self.psi1_w) + self.psi1_b)
        contributions = stacked_linear(hidden, self.psi2_w) + self.psi2_b  # (instances, nets, C)
        logits = bags.sum(contributions)
        scores = weights if self.return_attention else contributions
        return NetOutput(logits, scores)


class AdditiveMIL(NeuralMIL):
    """Additive ABMIL; instance scores are the additive logit contributions (or the attention weights)."""

    config_class = AdditiveMILConfig
    format = "mixmil_workflow.AdditiveMIL/1"
    display_name = "Additive MIL"

    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module:
        return StackedAdditiveNet(n_nets, n_features, self.config, n_logits)
