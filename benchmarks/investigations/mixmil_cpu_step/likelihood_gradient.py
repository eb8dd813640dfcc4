"""The Binomial(2) likelihood's share of MixMIL's closed-form step: -mean log p and its gradient with
respect to the linear predictor (64 bags x 10 outputs x 8 posterior samples) through autograd, as the
step does it, against the gradient written out (y - n sigmoid(eta)); interleaved rounds, 2 threads.

    python benchmarks/investigations/mixmil_cpu_step/likelihood_gradient.py
"""

from __future__ import annotations

import statistics

import torch
from step_split import time_ms  # this folder is first on sys.path when run
from torch.nn import functional as F

from mixmil_workflow.models.likelihoods import Binomial


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    likelihood, n = Binomial(2), 2
    eta0, y = torch.randn(64, 10, 8), torch.randint(0, 3, (64, 10)).float()

    def through_autograd():
        eta = eta0.clone().requires_grad_(True)
        with torch.enable_grad():
            nll = -likelihood.log_prob(eta, y, constant=False).mean()
            (grad,) = torch.autograd.grad(nll, [eta])
        return nll.detach(), grad

    def written_out():
        nll = -(n * F.logsigmoid(eta0) - (n - y).unsqueeze(-1) * eta0).sum(1).mean()
        grad = (n * torch.sigmoid(eta0) - y.unsqueeze(-1)).div_(eta0.shape[0] * eta0.shape[2])
        return nll, grad

    (nll_a, grad_a), (nll_b, grad_b) = through_autograd(), written_out()
    print(f"difference: NLL {(nll_a - nll_b).abs().item():.2e}, gradient {(grad_a - grad_b).abs().max().item():.2e}")
    times = {"autograd": [], "written out": []}
    for _ in range(5):
        times["autograd"].append(time_ms(through_autograd, 2000))
        times["written out"].append(time_ms(written_out, 2000))
    print({name: f"{statistics.median(v):.3f} ms" for name, v in times.items()})


if __name__ == "__main__":
    main()
