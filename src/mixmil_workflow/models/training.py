"""The one training loop of every torch model: epochs, a progress bar, per-epoch timing, the non-finite
check, the loss history and an early-stopping hook.

What an epoch does (minibatches of bags, a closed-form or autograd step, SMMILe's one-slide steps) is the
model's: it passes ``run_epoch(epoch)``, which returns the epoch's mean loss, or several values whose
first is the loss (MixMIL: loss, NLL, KL). The loop owns everything around it, so every model reports
progress, timing and failures the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mixmil_workflow.bags import minibatches


@dataclass
class TrainingRecord:
    losses: np.ndarray  # (epochs,) or (epochs, values): what run_epoch returned, in its dtype
    epoch_seconds: np.ndarray  # (epochs,) wall time of each epoch
    stopped_early: bool = False

    @property
    def loss(self) -> np.ndarray:
        return self.losses if self.losses.ndim == 1 else self.losses[:, 0]


class PatienceStopping:
    """Stop when the monitored value has not improved by ``min_delta`` for ``patience`` epochs.

    ``monitor(epoch, loss)`` gives the value (default: the training loss); ``mode`` "min" or "max" (e.g.
    a validation AUC). ``best_epoch`` is the epoch of the best value seen."""

    def __init__(self, patience: int, monitor: Callable[[int, float], float] | None = None, mode: str = "min",
                 min_delta: float = 0.0):  # fmt: skip
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.monitor, self.mode, self.min_delta = patience, monitor, mode, min_delta
        self.best: float | None = None
        self.best_epoch = -1

    def __call__(self, epoch: int, loss: float) -> bool:
        value = float(loss if self.monitor is None else self.monitor(epoch, loss))
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.best_epoch = value, epoch
        return epoch - self.best_epoch >= self.patience


def train_epochs(
    run_epoch: Callable[[int], float | Sequence[float] | np.ndarray],
    n_epochs: int,
    *,
    name: str,
    progress: bool = True,
    early_stopping: Callable[[int, float], bool] | None = None,
) -> TrainingRecord:
    """Run ``run_epoch`` for ``n_epochs`` epochs (fewer when ``early_stopping(epoch, loss)`` says stop).

    Raises FloatingPointError naming the model and epoch as soon as the loss is not finite."""
    values, seconds = [], []
    stopped = False
    bar = tqdm(range(n_epochs), desc=name, disable=not progress, mininterval=5.0, unit="epoch")
    for epoch in bar:
        start = time.perf_counter()
        out = run_epoch(epoch)
        out = out.cpu().numpy() if isinstance(out, torch.Tensor) else out
        seconds.append(time.perf_counter() - start)
        values.append(out)
        loss = float(np.ravel(out)[0])
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"{name} loss became {loss} at epoch {epoch}; lower the learning rate or check the inputs"
            )
        if progress and (epoch % 50 == 0 or epoch == n_epochs - 1):
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if early_stopping is not None and early_stopping(epoch, loss):
            stopped = True
            break
    bar.close()
    losses = np.asarray(values) if values else np.zeros(0)
    return TrainingRecord(losses, np.asarray(seconds, dtype=float), stopped)


class FusedAdam:
    """``torch.optim.Adam(params, fused=True)``'s update, bit for bit, without the optimiser's per-step
    bookkeeping.

    Why not the optimiser itself: at MixMIL's simulation size a whole training step takes about 2 ms on
    a 2-core CPU, and ``Optimizer.step`` spent about 0.15 ms of it regrouping the same five tensors by
    device and dtype before its one call of the fused kernel (0.035 ms). This class keeps the state as
    that optimiser does (first and second moments, a float32 step count per parameter, a parameter
    without a gradient skipped and its count left alone) and calls the same kernel, so a fit gives the
    same numbers (``tests/models/test_training.py`` holds the two to equality). MixMIL and the neural
    baselines train with it (the optimiser's Python was about 10 % of a DSMIL step at the simulation's
    size). One parameter group; a torch learning-rate schedule drives ``lr`` through
    :class:`TorchSchedule`.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):  # fmt: skip
        self.params = [p for p in params if p.requires_grad]
        if len({(p.device, p.dtype) for p in self.params}) > 1:
            raise ValueError("FusedAdam takes parameters of one device and dtype (torch.optim.Adam groups them)")
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.options = dict(lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
                            amsgrad=False, maximize=False)  # fmt: skip

    @property
    def lr(self) -> float:
        return self.options["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.options["lr"] = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is not None:
                p.grad = None if set_to_none else p.grad.zero_()

    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        if len(live) < len(self.params):
            params, avgs, sqs, steps = (
                [group[i] for i in live] for group in (self.params, self.exp_avgs, self.exp_avg_sqs, self.steps)
            )
        else:
            params, avgs, sqs, steps = self.params, self.exp_avgs, self.exp_avg_sqs, self.steps
        torch._foreach_add_(steps, 1)
        # The kernel torch.optim.Adam(fused=True) calls (aten::_fused_adam_), with the same arguments.
        torch._fused_adam_(params, [p.grad for p in params], avgs, sqs, [], steps, **self.options)


class TorchSchedule:
    """A torch learning-rate scheduler driving :class:`FusedAdam`'s rate, epoch by epoch.

    The scheduler runs on a stand-in optimiser (one parameter that never has a gradient), so the rates are
    torch's own arithmetic: CosineAnnealingLR, for one, computes each rate from the previous one, which
    differs in the last bits from its closed form. ``make`` builds the scheduler from an optimiser."""

    def __init__(self, optimiser: FusedAdam, make: Callable[[torch.optim.Optimizer], object]):
        self.optimiser = optimiser
        self._stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=optimiser.lr)
        self._scheduler = make(self._stand_in)

    def step(self) -> None:
        self._stand_in.step()  # nothing to update; keeps the scheduler's call-order check quiet
        self._scheduler.step()
        self.optimiser.lr = self._stand_in.param_groups[0]["lr"]


def shuffled_minibatches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's minibatches of bag indices: a fresh permutation from ``generator``, cut in order."""
    return minibatches(torch.randperm(n, generator=generator), batch_size)
