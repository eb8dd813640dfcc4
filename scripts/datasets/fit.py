"""Fit one model for one label on the bags outside one fold; predict the held-out bags."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import torch

from mixmil_workflow.io import job_device, log_to, save_npz, save_table
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.study import fit_fold, load_prepared

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    label = LabelSpec(**snakemake.params.label)
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**snakemake.params.model, "threads": snakemake.threads}
    wc = snakemake.wildcards
    print(f"{wc.dataset}: {wc.model} ({spec}) for {label}, fold {wc.fold}, seed {snakemake.params.seed}, {device}")
    bags, table = load_prepared(snakemake.input.matrix, snakemake.input.table, snakemake.params.id_column)
    predictions, weights = fit_fold(
        spec,
        bags,
        table,
        label,
        list(snakemake.params.covariates),
        int(wc.fold),
        snakemake.params.seed,
        snakemake.params.id_column,
        device,
    )
    print(f"trained in {predictions['train_seconds'].iloc[0]:.1f} s; {len(predictions)} held-out bags")
    save_table(snakemake.output.predictions, predictions)
    save_npz(snakemake.output.weights, **weights)
