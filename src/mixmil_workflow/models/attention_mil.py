"""ABMIL and Gated ABMIL (Ilse, Tomczak, Welling, ICML 2018) on precomputed instance embeddings.

Per network: h_i = ReLU(W_e x_i + b_e) (instance encoder, width "Dim. Encoder" of the paper's
Table C.2), attention e_i = w^T tanh(V h_i + b_V) [gated: ⊙ sigmoid(U h_i + b_U)] + b_w, a = softmax of
e over the bag's instances, bag embedding z = sum_i a_i h_i, logits = W_c z + b_c. Instance scores: a.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.neural import NetOutput, NeuralMIL, stacked_linear, stacked_uniform
from mixmil_workflow.models.options import AttentionMILConfig


class StackedAttention(nn.Module):
    """The instance encoder and (gated) attention of ``n_nets`` independent networks."""

    def __init__(self, n_nets: int, n_features: int, hidden: int, attention: int, gated: bool, gen: torch.Generator):
        super().__init__()
        self.gated = gated
        self.enc_w = stacked_uniform(n_nets, n_features, n_features, hidden, generator=gen)
        self.enc_b = stacked_uniform(n_nets, n_features, hidden, generator=gen)
        self.att_v = stacked_uniform(n_nets, hidden, hidden, attention, generator=gen)
        self.att_vb = stacked_uniform(n_nets, hidden, attention, generator=gen)
        if gated:
            self.att_u = stacked_uniform(n_nets, hidden, hidden, attention, generator=gen)
            self.att_ub = stacked_uniform(n_nets, hidden, attention, generator=gen)
        self.att_w = stacked_uniform(n_nets, attention, attention, generator=gen)
        self.att_wb = stacked_uniform(n_nets, attention, generator=gen)

    def forward(self, bags: Bags) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded instances h (instances, nets, hidden) and attention weights a (instances, nets)."""
        h = F.relu(torch.einsum("iq,nqm->inm", bags.x, self.enc_w) + self.enc_b)
        v = torch.tanh(stacked_linear(h, self.att_v) + self.att_vb)
        if self.gated:
            v = v * torch.sigmoid(stacked_linear(h, self.att_u) + self.att_ub)
        scores = stacked_linear(v, self.att_w.unsqueeze(-1))[..., 0] + self.att_wb
        return h, bags.softmax(scores)


class StackedAttentionNet(nn.Module):
    """``n_nets`` independent (gated) attention-MIL networks evaluated together."""

    def __init__(
        self, n_nets: int, n_features: int, hidden: int, attention: int, n_logits: int, gated: bool, seed: int
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.attention = StackedAttention(n_nets, n_features, hidden, attention, gated, gen)
        self.cls_w = stacked_uniform(n_nets, hidden, hidden, n_logits, generator=gen)
        self.cls_b = stacked_uniform(n_nets, hidden, n_logits, generator=gen)

    def forward(self, bags: Bags) -> NetOutput:
        h, weights = self.attention(bags)
        pooled = bags.sum(weights.unsqueeze(-1) * h)  # (bags, nets, hidden)
        logits = stacked_linear(pooled, self.cls_w) + self.cls_b
        return NetOutput(logits, weights, bag_embeddings=pooled)


class AttentionMIL(NeuralMIL):
    """ABMIL (``gated=False``) and Gated ABMIL (``gated=True``); instance scores are the attention weights."""

    config_class = AttentionMILConfig
    format = "mixmil_workflow.AttentionMIL/1"

    @property
    def display_name(self) -> str:
        return "Gated ABMIL" if self.config.gated else "ABMIL"

    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module:
        cfg = self.config
        return StackedAttentionNet(n_nets, n_features, cfg.hidden_dim, cfg.attention_dim, n_logits, cfg.gated, cfg.seed)
