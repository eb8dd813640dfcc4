"""ResNet50 (SimCLR weights, or a seeded random initialisation without a checkpoint) embeddings of one
plate's crops, with a metadata file that says which weights made them."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import json
import time

import torch

from mixmil_workflow.download import sha256_of
from mixmil_workflow.io import atomic_path, job_device, log_to
from mixmil_workflow.microscopy.crops import n_crops, read_crops
from mixmil_workflow.microscopy.embedding import build_encoder, embed_crops

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    checkpoint = snakemake.input.get("checkpoint") or None
    checkpoint = checkpoint[0] if isinstance(checkpoint, list) else checkpoint
    model = build_encoder(checkpoint, snakemake.params.seed)
    weights = (
        f"SimCLR checkpoint {checkpoint} (sha256 {sha256_of(checkpoint)})"
        if checkpoint
        else f"random initialisation (seed {snakemake.params.seed}): no SimCLR checkpoint configured, "
        "embeddings are NOT the paper's"
    )
    print(f"ResNet50 weights: {weights}; device {device}")
    total = n_crops(snakemake.input.crops)
    start = time.perf_counter()
    x = embed_crops(
        model,
        lambda a, b: read_crops(snakemake.input.crops, a, b),
        total,
        snakemake.params.batch_size,
        device,
        desc=snakemake.wildcards.plate,
    )
    seconds = time.perf_counter() - start
    print(f"{total} crops in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f} crops/s)")
    with atomic_path(snakemake.output.embeddings) as tmp, open(tmp, "wb") as fh:
        import numpy as np

        np.save(fh, x)
    meta = {"weights": weights, "checkpoint": checkpoint, "n_crops": total, "dim": int(x.shape[1]), "device": device}
    with atomic_path(snakemake.output.metadata) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
