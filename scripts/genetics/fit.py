"""Fit one model on every genetic label at once (the P outputs) on the donors outside one fold;
predict the held-out donors and weigh their cells."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import torch

from mixmil_workflow.genetics.training import LABEL_LIKELIHOOD
from mixmil_workflow.io import job_device, log_to, read_table, save_npz, save_table
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.study import fit_fold_outputs, load_prepared

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**snakemake.params.model, "threads": snakemake.threads}
    wc = snakemake.wildcards
    variants = read_table(snakemake.input.variants)
    labels = [LabelSpec(rsid, **LABEL_LIKELIHOOD) for rsid in variants["rsid"]]
    print(f"{wc.model} ({spec}): {len(labels)} outputs, fold {wc.fold}, seed {snakemake.params.seed}, {device}")
    bags, table = load_prepared(snakemake.input.matrix, snakemake.input.table, "donor_id")
    predictions, weights = fit_fold_outputs(
        spec,
        bags,
        table,
        labels,
        list(snakemake.params.covariates),
        int(wc.fold),
        snakemake.params.seed,
        "donor_id",
        device,
        getattr(snakemake.output, "model", None),  # config save_models.genetics
    )
    n_held_out = predictions["bag"].nunique()
    print(f"trained in {predictions['train_seconds'].iloc[0]:.1f} s; {n_held_out} held-out donors")
    save_table(snakemake.output.predictions, predictions)
    save_npz(snakemake.output.weights, **weights)
