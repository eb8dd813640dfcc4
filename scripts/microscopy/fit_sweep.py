"""One sweep combination on one repeat: trained on the training wells outside the validation wells,
predicting the validation wells (Appendix C.2)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import torch

from mixmil_workflow.io import job_device, log_to, save_table
from mixmil_workflow.microscopy.features import load_repeat, plate_columns
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.study import fit_fold

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    params, wc = snakemake.params, snakemake.wildcards
    bags, table = load_repeat(snakemake.input.matrix, snakemake.input.bags, params.pcs)
    train = np.flatnonzero((table["split"] == "train").to_numpy())
    table = table.iloc[train].reset_index(drop=True)
    table["fold"] = np.where(table["validation"].astype(bool), 0, -1)
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**params.model, "threads": snakemake.threads}
    n_fit, n_validation = (table["fold"] == -1).sum(), (table["fold"] == 0).sum()
    print(
        f"{wc.model} combination {wc.combo} ({spec}): {params.pcs} PCs, {n_fit} wells to fit, {n_validation} to score"
    )
    predictions, _ = fit_fold(
        spec,
        bags.subset(torch.as_tensor(train)),
        table,
        LabelSpec("moa", "categorical"),
        plate_columns(table),
        0,
        params.seed,
        "bag",
        device,
    )
    print(f"validation accuracy {(predictions['y'] == predictions['score']).mean():.3f}")
    save_table(snakemake.output.predictions, predictions)
