"""Do two runs of one configuration give the same numbers on a GPU, and what does determinism cost?

Each model is trained twice, each time in a fresh Python process, on ragged bags (the default simulation
with every bag cut to a random 20-50 of its 50 instances, so that the per-bag sums go through
``index_add_``), once with torch's default kernels and once the way the workflow's training jobs run on a
GPU (``mixmil_workflow.io.use_deterministic_gpu_algorithms``). It records whether the two runs' test
predictions and instance scores are equal bit for bit, their largest difference, and the training time.
On the CPU both modes should be equal bit for bit (a check of the script itself); on a GPU the default
mode is expected to differ (atomic adds) and the deterministic mode not to.

    python benchmarks/gpu_determinism.py --device cuda --out benchmarks/results/h100/gpu_determinism
    python benchmarks/gpu_determinism.py --device cpu --epochs 20 --out /tmp/determinism   # the script's check
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from harness import run_snippet

MODES = ("default", "deterministic")

# One training run in a fresh process: CUBLAS_WORKSPACE_CONFIG only counts before the first cuBLAS call.
FIT_ONE_RUN = r"""
import hashlib, json, sys, time
import numpy as np, torch
from mixmil_workflow.bags import Bags
from mixmil_workflow.io import use_deterministic_gpu_algorithms
from mixmil_workflow.simulate.paper import SimulationParams, simulate
from mixmil_workflow.models.registry import build as build_model

model_type, mode, device, epochs, outputs, seed, threads = sys.argv[1:8]
torch.set_num_threads(int(threads))
if mode == "deterministic":
    use_deterministic_gpu_algorithms()
data = simulate(SimulationParams(n_outputs=int(outputs)), seed=int(seed))
rng = np.random.default_rng(int(seed))

def ragged(x):
    return Bags.from_list([bag[: rng.integers(20, bag.shape[0] + 1)] for bag in x])

train, test = ragged(data.x_train), ragged(data.x_test)
model = build_model({"type": model_type, "n_epochs": int(epochs), "progress": False}, int(seed), device)
start = time.perf_counter()
model.fit(train, data.y_train)
if device.startswith("cuda"):
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
prediction = model.predict(test).mean
scores = model.instance_scores(test)
arrays = {"prediction": np.asarray(prediction, dtype=np.float64), "scores": np.asarray(scores, dtype=np.float64)}
print(json.dumps({
    "seconds": seconds,
    **{f"{k}_sha256": hashlib.sha256(v.tobytes()).hexdigest() for k, v in arrays.items()},
    **{k: v.ravel().tolist() for k, v in arrays.items()},
}))
"""


def compare(first: dict, second: dict) -> dict:
    out = {"seconds": [first["seconds"], second["seconds"]]}
    for key in ("prediction", "scores"):
        a, b = np.asarray(first[key]), np.asarray(second[key])
        out[f"{key}_bitwise_equal"] = first[f"{key}_sha256"] == second[f"{key}_sha256"]
        out[f"{key}_max_abs_diff"] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return out


def markdown(record: dict) -> str:
    s = record["settings"]
    lines = [
        f"# Determinism of two training runs on `{s['device']}` ({record['date']})",
        "",
        f"Machine: {record['machine']}. Default simulation (seed {s['seed']}, {s['outputs']} outputs), bags cut "
        f"to 20-50 instances, {s['epochs']} epochs, {s['threads']} torch thread(s); each run a fresh process. "
        f"Command: `python benchmarks/gpu_determinism.py --device {s['device']} --epochs {s['epochs']}`.",
        "",
        "| model | mode | predictions equal bit for bit | max abs diff | instance scores equal | max abs diff "
        "| training s (run 1, run 2) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, modes in record["results"].items():
        for mode, r in modes.items():
            lines.append(
                f"| {model} | {mode} | {'yes' if r['prediction_bitwise_equal'] else 'no'} | "
                f"{r['prediction_max_abs_diff']:.3g} | {'yes' if r['scores_bitwise_equal'] else 'no'} | "
                f"{r['scores_max_abs_diff']:.3g} | {r['seconds'][0]:.1f}, {r['seconds'][1]:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["mixmil", "abmil", "bayes_mil"])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--outputs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu_determinism"))
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here; use --device cpu to check the script itself")
    machine = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{os.cpu_count()}-core CPU"
    record = {
        "settings": {**vars(args), "out": str(args.out)},
        "machine": f"{machine}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "results": {},
    }
    for model in args.models:
        record["results"][model] = {}
        for mode in MODES:
            runs = [
                run_snippet(FIT_ONE_RUN, model, mode, args.device, args.epochs, args.outputs, args.seed, args.threads)
                for _ in range(2)
            ]
            record["results"][model][mode] = result = compare(*runs)
            print(model, mode, {k: v for k, v in result.items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
