"""Table 1 at the genetics data's scale: training-step and prediction times and parameter counts of the
MIL models on the first genetic label (one output, covariates as in training; fold 0 held out)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import torch

from mixmil_workflow.io import log_to, read_table, resolve_device
from mixmil_workflow.own_bags.study import load_prepared
from mixmil_workflow.studies.costs import measure_bag_costs, save_cost_tables

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    # Not job_device: these jobs time torch's default (fastest) kernels, not its deterministic ones.
    device = resolve_device(snakemake.params.device)
    costs = snakemake.params.costs
    bags, table = load_prepared(snakemake.input.matrix, snakemake.input.table, "donor_id")
    label = read_table(snakemake.input.variants)["rsid"].iloc[0]
    held_out = table["fold"].to_numpy() == 0
    train, test = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    y = table[[label]].to_numpy(float)
    covariates = table[list(snakemake.params.covariates)].to_numpy(float)
    print(f"label {label}: {len(train)} training and {len(test)} held-out donors, {bags.n_features} features")
    rows = []
    for name, spec in snakemake.params.models.items():
        print(f"measuring {name} on {device} ...", flush=True)
        row = measure_bag_costs(
            name,
            spec,
            bags.subset(train),
            y[train],
            bags.subset(test),
            snakemake.params.seed,
            device,
            batch_size=costs["batch_size"],
            n_epochs=costs["n_epochs"],
            n_timings=costs["n_timings"],
            train_covariates=covariates[train],
            test_covariates=covariates[test],
        )
        print(f"  step {row['batch_ms_mean']:.2f} ms, predict {row['predict_ms_mean']:.2f} ms", flush=True)
        rows.append(row)
    markdown = save_cost_tables(
        rows, snakemake.output.tsv, snakemake.output.md, snakemake.params.provenance, snakemake.output.html
    )
    print(markdown)
