"""Embedding throughput of the microscopy branch: crops per second of the timm ResNet50 on 96 x 96
three-channel crops (the embed_bbbc021 rule's code path: uint8 crops -> normalise -> 2048-d features),
per batch size, on the CPU (the threads the rule gets) and on a GPU where one is visible.

The real MoA subset has 133,628 cells (paper Section 4.4): the table gives the hours that takes.

    python benchmarks/bbbc021_embedding_speed.py            # writes benchmarks/results/bbbc021_embedding_speed.*
    python benchmarks/bbbc021_embedding_speed.py --threads 2 --batch-sizes 64 256 --crops 512 --out /tmp/b
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mixmil_workflow.microscopy.embedding import build_encoder, embed_crops

PAPER_CELLS = 133_628


def measure(device: str, batch_size: int, n_crops: int, seed: int = 0) -> dict:
    model = build_encoder(None, seed)
    crops = np.random.default_rng(seed).integers(0, 256, size=(n_crops, 3, 96, 96), dtype=np.uint8)
    embed_crops(model, lambda a, b: crops[a:b], min(batch_size, n_crops), batch_size, device)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    embed_crops(model, lambda a, b: crops[a:b], n_crops, batch_size, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = n_crops / seconds
    return {
        "device": device,
        "batch_size": batch_size,
        "crops": n_crops,
        "seconds": round(seconds, 2),
        "crops_per_s": round(rate, 1),
        "paper_scale_hours": round(PAPER_CELLS / rate / 3600, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 256])
    parser.add_argument("--crops", type=int, default=1024)
    parser.add_argument("--gpu-crops", type=int, default=16384)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure("cpu", b, args.crops) for b in args.batch_sizes]
    if torch.cuda.is_available():
        rows += [measure("cuda", b, args.gpu_crops) for b in args.batch_sizes]
    machine = f"{platform.processor() or platform.machine()}, {args.threads} CPU threads, torch {torch.__version__}" + (
        f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bbbc021_embedding_speed.json").write_text(
        json.dumps({"date": stamp, "machine": machine, "rows": rows}, indent=1) + "\n"
    )
    lines = [
        f"# BBBC021 embedding throughput ({stamp})",
        "",
        f"Machine: {machine}. ResNet50 (timm) on 96 x 96 x 3 uint8 crops, 2048-d features, inference mode.",
        "Command: `python benchmarks/bbbc021_embedding_speed.py`",
        "",
        "| device | batch size | crops | seconds | crops/s | hours for the paper's 133,628 cells |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['device']} | {r['batch_size']} | {r['crops']} | {r['seconds']} | {r['crops_per_s']} | "
            f"{r['paper_scale_hours']} |"
            for r in rows
        ),
        "",
    ]
    (args.out / "bbbc021_embedding_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
