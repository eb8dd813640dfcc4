"""DSMIL (Li, Li, Eliceiri, CVPR 2021): dual-stream MIL on precomputed instance embeddings.

Per network and class c: instance classifier c_i = W_0 x_i + b_0; critical instance m = argmax_i c_i
(not differentiated); queries q_i = W_1 x_i + b_1 (the reference's ``nonlinear=False``; with
``nonlinear_query`` q_i = tanh(W_2 ReLU(W_1 x_i + b_1) + b_2), the reference's other option); attention
A_i = softmax_i(<q_i, q_m> / sqrt(d)); bag embedding b = sum_i A_i x_i (values are the embeddings, the
reference default); bag logit s = linear map of all classes' bag embeddings (the reference's Conv1d with
kernel size D). Loss: 0.5 * NLL(s) + 0.5 * NLL(max_i c_i). Instance scores: A.

Optimiser as the reference (Adam, betas (0.5, 0.9), cosine annealing to 5e-6) with the paper's Table C.2
learning rate and weight decay; orthogonal weights and zero biases as the current reference code.
With the paper's query width 30 and Q = 30 the default network has the 992 parameters of the paper's
Table 1, which fixes the linear query and the identity value map.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR

from mixmil_workflow.bags import Bags
from mixmil_workflow.models.neural import NetOutput, NeuralMIL, stacked_linear
from mixmil_workflow.models.options import DSMILConfig
from mixmil_workflow.models.training import FusedAdam, TorchSchedule


def _orthogonal(n_nets: int, fan_in: int, fan_out: int, generator: torch.Generator) -> nn.Parameter:
    weight = torch.empty(n_nets, fan_in, fan_out)
    for k in range(n_nets):
        nn.init.orthogonal_(weight[k], generator=generator)
    return nn.Parameter(weight)


class StackedDSMILNet(nn.Module):
    def __init__(self, n_nets: int, n_features: int, hidden: int, n_classes: int, seed: int, nonlinear_query: bool):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.hidden = hidden
        self.inst_w = _orthogonal(n_nets, n_features, n_classes, gen)
        self.inst_b = nn.Parameter(torch.zeros(n_nets, n_classes))
        self.q1_w, self.q1_b = _orthogonal(n_nets, n_features, hidden, gen), nn.Parameter(torch.zeros(n_nets, hidden))
        self.nonlinear_query = nonlinear_query
        if nonlinear_query:
            self.q2_w = _orthogonal(n_nets, hidden, hidden, gen)
            self.q2_b = nn.Parameter(torch.zeros(n_nets, hidden))
        self.bag_w = _orthogonal(n_nets, n_classes * n_features, n_classes, gen)
        self.bag_b = nn.Parameter(torch.zeros(n_nets, n_classes))

    def forward(self, bags: Bags) -> NetOutput:
        x, index = bags.x, bags.index
        inst = torch.einsum("iq,nqc->inc", x, self.inst_w) + self.inst_b  # (instances, nets, classes)
        # Critical instance per bag, net and class: the first instance with the bag's maximal score.
        critical = bags.argmax(inst)  # (B, N, C)
        n_ids = torch.arange(inst.shape[1], device=x.device).view(1, -1, 1)
        c_ids = torch.arange(inst.shape[2], device=x.device).view(1, 1, -1)
        max_inst = inst[critical, n_ids, c_ids]  # (B, N, C): max_i c_i, differentiable through the argmax
        q = torch.einsum("iq,nqh->inh", x, self.q1_w) + self.q1_b  # (instances, nets, hidden)
        if self.nonlinear_query:
            q = torch.tanh(stacked_linear(torch.relu(q), self.q2_w) + self.q2_b)
        q_critical = q[critical, n_ids]  # (B, N, C, hidden)
        # <q_i, q_m> as a product and a sum: einsum makes it a batch of one-by-one matrix products per
        # instance and net, the slowest part of a CPU step (measured).
        logits = (q.unsqueeze(2) * q_critical.index_select(0, index)).sum(-1) / math.sqrt(self.hidden)
        attention = bags.softmax(logits)  # (instances, nets, classes)
        bag_emb = bags.sum(attention.unsqueeze(-1) * x.view(len(x), 1, 1, -1))  # (B, N, C, Q)
        bag_logits = stacked_linear(bag_emb.flatten(2), self.bag_w) + self.bag_b
        return NetOutput(bag_logits, attention, max_inst, bag_emb.flatten(2))


class DSMIL(NeuralMIL):
    config_class = DSMILConfig
    format = "mixmil_workflow.DSMIL/1"
    display_name = "DSMIL"

    def build_net(self, n_nets: int, n_features: int, n_logits: int) -> nn.Module:
        cfg = self.config
        return StackedDSMILNet(n_nets, n_features, cfg.hidden_dim, n_logits, cfg.seed, cfg.nonlinear_query)

    def make_optimiser(self, params) -> FusedAdam:
        cfg = self.config
        return FusedAdam(params, lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay)

    def make_scheduler(self, optimiser: FusedAdam) -> TorchSchedule:
        """The reference's cosine decay of the learning rate over the epochs, down to ``min_lr``."""
        n_epochs, min_lr = max(1, self.config.n_epochs), self.config.min_lr
        return TorchSchedule(optimiser, lambda opt: CosineAnnealingLR(opt, T_max=n_epochs, eta_min=min_lr))

    def loss(self, out: NetOutput, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.bag_loss(out.logits, y) + 0.5 * self.bag_loss(out.aux_logits, y)
