"""MixMIL's dense attention pooling step (forward + closed-form backward) at the default simulation's
minibatch size (64 bags x 50 instances x 30 features, 8 posterior samples x 10 outputs = 80 directions
of each kind), in the current layout (scores as directions x instances, softmax over a contiguous axis)
and transposed (instances x directions, one ``flat @ d.T`` matmul), on 1 and 2 threads. Rounds alternate
the variants so that a noisy shared host affects them alike; medians are reported.

    python benchmarks/investigations/mixmil_cpu_step/attention_pool_layouts.py [--compile]

``--compile`` adds the current step through ``torch.compile`` (inductor's C++ backend; needs a compiler).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from step_split import time_ms  # this folder is first on sys.path when run

from mixmil_workflow.models.attention_pool import attention_pool_backward, attention_pool_forward

N_BAGS, N_INST, N_FEAT, N_DIRS = 64, 50, 30, 80


def current(d, x, g):
    t, cache = attention_pool_forward(d, x)
    return t, attention_pool_backward(cache, g, in_place=True)


def transposed(d, x, g):
    b, i, q = x.shape
    flat = x.reshape(b * i, q)
    a, z = (flat @ d.T).view(b, i, 2, -1).unbind(2)  # (B, I, K) each, strided
    w = torch.softmax(a, dim=1)
    t = (w * z).sum(1)  # (B, K)
    gz = w * g.T.unsqueeze(1)
    ga = gz * (z - t.unsqueeze(1))
    return t.T, (flat.T @ torch.stack([ga, gz], 2).view(b * i, -1)).T


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile", action="store_true")
    variants = [current, transposed]
    if parser.parse_args().compile:
        compiled = torch.compile(current)
        compiled.__name__ = "compiled"
        variants.append(compiled)
    torch.manual_seed(0)
    args = (torch.randn(2 * N_DIRS, N_FEAT) * 0.1, torch.randn(N_BAGS, N_INST, N_FEAT), torch.randn(N_DIRS, N_BAGS))
    (t0, g0), (t1, g1) = current(*args), transposed(*args)
    assert torch.allclose(t0, t1, atol=1e-5) and torch.allclose(g0, g1, atol=1e-3)
    times = {}
    for _ in range(5):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for f in variants:
                times.setdefault((f.__name__, threads), []).append(time_ms(lambda f=f: f(*args)))
    for (name, threads), values in times.items():
        print(f"{name:10s} {threads} thread(s): median {statistics.median(values):.3f} ms "
              f"(range {min(values):.3f}-{max(values):.3f}) per step")  # fmt: skip


if __name__ == "__main__":
    main()
