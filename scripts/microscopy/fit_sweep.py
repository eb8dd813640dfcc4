"""One sweep combination on one repeat: trained on the training wells outside the validation wells,
predicting the validation wells (Appendix C.2)."""

import numpy as np
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.dataset_study import fit_fold
from mixmil_workflow.datasets import LabelSpec
from mixmil_workflow.io import log_to, read_table, resolve_device, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = resolve_device(snakemake.params.device)
    params = snakemake.params
    matrix = np.load(snakemake.input.matrix, mmap_mode="r")
    table = read_table(snakemake.input.bags).astype({"bag": str})
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(table["n_instances"].to_numpy())]), dtype=torch.long)
    bags = Bags(torch.from_numpy(np.ascontiguousarray(matrix[:, : params.pcs], dtype=np.float32)), offsets)
    train = np.flatnonzero((table["split"] == "train").to_numpy())
    table = table.iloc[train].reset_index(drop=True)
    table["fold"] = np.where(table["validation"].astype(bool), 0, -1)
    covariates = [c for c in table.columns if c.startswith("plate_")]
    spec = dict(params.model)
    print(
        f"{snakemake.wildcards.model} combination {snakemake.wildcards.combo} ({spec}): {params.pcs} PCs, "
        f"{(table['fold'] == -1).sum()} wells to train, {(table['fold'] == 0).sum()} to validate"
    )
    predictions, _ = fit_fold(
        spec,
        bags.subset(torch.as_tensor(train)),
        table,
        LabelSpec("moa", "categorical"),
        covariates,
        0,
        params.seed,
        "bag",
        device,
    )
    print(f"validation accuracy {(predictions['y'] == predictions['score']).mean():.3f}")
    save_table(snakemake.output.predictions, predictions)
