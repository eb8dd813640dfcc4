"""Fit one model on one repeat's training wells, once per number of leading principal components;
predict the MoA of the held-out wells and weigh their cells."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import torch

from mixmil_workflow.bags import Bags
from mixmil_workflow.io import job_device, log_to, save_npz, save_table
from mixmil_workflow.microscopy.features import load_repeat, plate_columns
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.study import fit_fold

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    wc, params, output = snakemake.wildcards, snakemake.params, snakemake.output
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**params.model, "threads": snakemake.threads}
    # the repeat read once, with the most components; each fit takes the leading ones
    all_pcs, table = load_repeat(snakemake.input.matrix, snakemake.input.bags, max(params.pcs))
    covariates = plate_columns(table)
    models = getattr(output, "model", [None] * len(params.pcs))  # config save_models.microscopy
    for pcs, seed, predictions_path, weights_path, model_path in zip(
        params.pcs, params.seeds, output.predictions, output.weights, models, strict=True
    ):
        bags = Bags(all_pcs.x[:, :pcs].contiguous(), all_pcs.offsets)
        print(f"{wc.model} ({spec}): {pcs} PCs, repeat {wc.repeat}, {len(covariates)} plate covariates, {device}")
        predictions, weights = fit_fold(
            spec, bags, table, LabelSpec("moa", "categorical"), covariates, 0, seed, "bag", device, model_path
        )
        accuracy = (predictions["y"] == predictions["score"]).mean()
        print(f"trained in {predictions['train_seconds'].iloc[0]:.1f} s; held-out accuracy {accuracy:.3f}")
        save_table(predictions_path, predictions)
        save_npz(weights_path, **weights)
