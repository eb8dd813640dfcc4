"""Fit one model on one repeat's training wells, once per number of leading principal components;
predict the MoA of the held-out wells and weigh their cells."""

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.dataset_study import fit_fold
from mixmil_workflow.datasets import LabelSpec
from mixmil_workflow.io import log_to, read_table, resolve_device, save_npz, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = resolve_device(snakemake.params.device)
    wc = snakemake.wildcards
    matrix = np.load(snakemake.input.matrix, mmap_mode="r")
    table = read_table(snakemake.input.bags).astype({"bag": str})
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(table["n_instances"].to_numpy())]), dtype=torch.long)
    covariates = [c for c in table.columns if c.startswith("plate_")]
    spec = dict(snakemake.params.model)
    outputs = zip(
        snakemake.params.pcs,
        snakemake.params.seeds,
        snakemake.output.predictions,
        snakemake.output.weights,
        strict=True,
    )
    for pcs, seed, predictions_path, weights_path in outputs:
        if pcs > matrix.shape[1]:
            raise ValueError(f"{snakemake.input.matrix} has {matrix.shape[1]} components; {pcs} asked for")
        bags = Bags(torch.from_numpy(np.ascontiguousarray(matrix[:, :pcs], dtype=np.float32)), offsets)
        print(f"{wc.model} ({spec}): {pcs} PCs, repeat {wc.repeat}, {len(covariates)} plate covariates, {device}")
        predictions, weights = fit_fold(
            spec, bags, table, LabelSpec("moa", "categorical"), covariates, 0, seed, "bag", device
        )
        accuracy = (predictions["y"] == predictions["score"]).mean()
        print(f"trained in {predictions['train_seconds'].iloc[0]:.1f} s; held-out accuracy {accuracy:.3f}")
        save_table(predictions_path, predictions)
        save_npz(weights_path, **weights)
