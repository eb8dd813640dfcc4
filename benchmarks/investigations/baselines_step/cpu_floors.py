"""What bounds the torch MIL baselines' CPU step after eac8bfb (issue 37, target 4), in five measurements:

1. elementwise and random-number rates on 240,000 float32 numbers (ABMIL's per-step activations: 16 bags
   x 50 instances x 10 nets x 30 units), torch against numpy;
2. the (gated) attention head, forward and backward: autograd against the fused prototype
   (``fused_attention_head.py``);
3. whole epochs of ABMIL, Gated ABMIL and Additive MIL with the package's head and with the prototype
   patched in, rounds interleaved;
4. each baseline's step at the default simulation's size against the same network with 2 instances,
   2 features, widths of 2 and one output: the fixed cost of a step (op dispatch, autograd, Adam);
5. the matrix products of each baseline's epoch (profiled self time of torch's bmm / mm kernels) against
   the reference's recorded epoch (benchmarks/results/baselines_speed.json): the speed-up that would
   remain possible if everything else in a step took no time.

Random data of the simulation's shapes and config/paper.yaml's settings (Table C.2); medians.

    python benchmarks/investigations/baselines_step/cpu_floors.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from fused_attention_head import attention_scores, attention_scores_reference  # noqa: E402

from mixmil_workflow.bags import Bags  # noqa: E402
from mixmil_workflow.models import attention_mil  # noqa: E402
from mixmil_workflow.models.neural import dropout  # noqa: E402
from mixmil_workflow.models.registry import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
MODELS = ("abmil", "gated_abmil", "dsmil", "bayes_mil", "additive_mil")
ACTIVATIONS = (800, 10, 30)


def time_us(f, n=200) -> float:
    for _ in range(5):
        f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e6


def rates(rounds: int = 7) -> list[tuple[str, float]]:
    """Median over ``rounds`` rounds that each time every operation once: the shared host slows down in
    bursts, and interleaving puts every operation in the same bursts."""
    x = torch.randn(ACTIVATIONS)
    y = torch.randn(ACTIVATIONS)
    a, out = x.numpy(), np.empty(ACTIVATIONS, np.float32)
    rng = np.random.default_rng(0)
    operations = [
        ("torch.tanh", lambda: torch.tanh(x)),
        ("numpy tanh (one thread)", lambda: np.tanh(a, out=out)),
        ("torch.sigmoid", lambda: torch.sigmoid(x)),
        ("torch.mul of two tensors", lambda: x * y),
        ("F.dropout(p=0.25)", lambda: F.dropout(x, 0.25, training=True)),
        ("neural.dropout(p=0.25), the same values", lambda: dropout(x, 0.25)),
        ("torch.rand", lambda: torch.rand(ACTIVATIONS)),
        ("torch.randn", lambda: torch.randn(ACTIVATIONS)),
        ("numpy Generator.random (one thread)", lambda: rng.random(out=out, dtype=np.float32)),
        ("numpy Generator.standard_normal (one thread)", lambda: rng.standard_normal(out=out, dtype=np.float32)),
    ]  # fmt: skip
    times = [[time_us(f, n=40) for _, f in operations] for _ in range(rounds)]
    return [(name, statistics.median(row[i] for row in times)) for i, (name, _) in enumerate(operations)]


def head(gated: bool) -> tuple[float, float, float]:
    """Forward + backward of the head in microseconds, autograd and fused, and their largest difference."""
    gen = torch.Generator().manual_seed(0)
    n_inst, n_nets, width = ACTIVATIONS
    h = torch.randn(ACTIVATIONS, generator=gen).relu().requires_grad_()
    shapes = [(n_nets, width, width), (n_nets, width), (n_nets, width), (n_nets,)]
    shapes += [(n_nets, width, width), (n_nets, width)] if gated else []
    params = [(torch.randn(s, generator=gen) / width**0.5).requires_grad_() for s in shapes]
    grad = torch.randn(n_inst, n_nets, generator=gen)

    def step(f):
        return torch.autograd.grad((f(h, *params) * grad).sum(), [h, *params])

    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(step(attention_scores), step(attention_scores_reference), strict=True)
    )
    return time_us(lambda: step(attention_scores_reference)), time_us(lambda: step(attention_scores)), diff


def fused_forward(self, bags):
    """StackedAttention.forward with the prototype head."""
    h = F.relu(torch.einsum("iq,nqm->inm", bags.x, self.enc_w) + self.enc_b)
    gate = (self.att_u, self.att_ub) if self.gated else ()
    return h, bags.softmax(attention_scores(h, self.att_v, self.att_vb, self.att_w, self.att_wb, *gate))


def simulation_data(n_inst=50, n_features=30, n_outputs=10):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, n_inst, n_features)).astype(np.float32)
    return Bags.from_dense(x), rng.binomial(2, 0.3, size=(1000, n_outputs)).astype(np.float32)


def epoch_seconds(spec: dict, data, epochs=4) -> float:
    model = build({**spec, "n_epochs": epochs, "progress": False}, 0)
    model.fit(*data)
    return float(np.median(model.epoch_seconds[1:]))


def epochs_with_head(models: dict, rounds: int) -> list[tuple[str, float, float]]:
    data = simulation_data()
    original = attention_mil.StackedAttention.forward
    times = {(m, v): [] for m in models for v in ("autograd", "fused")}
    for _ in range(rounds):
        for m, spec in models.items():
            for variant in ("autograd", "fused"):
                attention_mil.StackedAttention.forward = fused_forward if variant == "fused" else original
                try:
                    times[m, variant].append(epoch_seconds(spec, data))
                finally:
                    attention_mil.StackedAttention.forward = original
    return [(m, statistics.median(times[m, "autograd"]), statistics.median(times[m, "fused"])) for m in models]


def fixed_costs(models: dict) -> list[tuple[str, float, float]]:
    steps = 1000 // 16 + 1
    full, tiny = simulation_data(), simulation_data(2, 2, 1)
    rows = []
    for m, spec in models.items():
        small = {**spec, **{k: 2 for k in ("hidden_dim", "attention_dim", "classifier_hidden_dim") if k in spec}}
        rows.append((m, epoch_seconds(spec, full) / steps * 1e3, epoch_seconds(small, tiny) / steps * 1e3))
    return rows


GEMM_KERNELS = ("aten::bmm", "aten::mm", "aten::addmm", "aten::baddbmm")


def matrix_product_floor(models: dict) -> list[tuple[str, float, float, float]]:
    """Per model: its epoch (s), the matrix products' share of a profiled epoch (s), and the reference's
    recorded epoch over that share: the largest speed-up left if all else were free."""
    recorded = json.loads((ROOT / "benchmarks" / "results" / "baselines_speed.json").read_text())
    reference = {row["model"]: row["reference_epoch_s"] for row in recorded["rows"]}
    data, rows = simulation_data(), []
    for m, spec in models.items():
        epoch = epoch_seconds(spec, data)  # unprofiled: the profiler inflates every op's dispatch, not the GEMMs
        model = build({**spec, "n_epochs": 2, "progress": False}, 0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.fit(*data)
        gemm = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in GEMM_KERNELS) / 2 / 1e6
        rows.append((m, epoch, gemm, reference[m] / gemm))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["models"]
    models = {m: {k: v for k, v in settings[m].items() if k != "n_epochs"} for m in MODELS}
    print(f"{args.threads} torch thread(s)\n\n| 240,000 float32 numbers | microseconds |\n|---|---|")
    for name, us in rates():
        print(f"| {name} | {us:.0f} |")
    print(
        "\n| attention head, forward + backward | autograd (us) | fused (us) | largest difference |\n|---|---|---|---|"
    )
    for gated in (False, True):
        ref, fused, diff = head(gated)
        print(f"| {'gated' if gated else 'plain'} | {ref:.0f} | {fused:.0f} | {diff:.1e} |")
    print("\n| model | s/epoch, autograd head | s/epoch, fused head | speed-up |\n|---|---|---|---|")
    attention = {m: models[m] for m in ("abmil", "gated_abmil", "additive_mil")}
    for m, ref, fused in epochs_with_head(attention, args.rounds):
        print(f"| {m} | {ref:.3f} | {fused:.3f} | {ref / fused:.2f}x |")
    print("\n| model | ms per step, simulation size | ms per step, widths 2 and 2 instances | fixed share |")
    print("|---|---|---|---|")
    for m, full, tiny in fixed_costs(models):
        print(f"| {m} | {full:.2f} | {tiny:.2f} | {tiny / full:.0%} |")
    print("\n| model | s/epoch | matrix products, s/epoch | share | reference's epoch over the products |")
    print("|---|---|---|---|---|")
    for m, epoch, gemm, bound in matrix_product_floor(models):
        print(f"| {m} | {epoch:.3f} | {gemm:.3f} | {gemm / epoch:.0%} | {bound:.2f}x |")


if __name__ == "__main__":
    main()
