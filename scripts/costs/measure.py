"""Measure training-step and prediction times and parameter counts of the MIL models (Table 1 analogue)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import torch

from mixmil_workflow.io import log_to, resolve_device
from mixmil_workflow.simulate.paper import SimulatedData
from mixmil_workflow.studies.costs import measure_model_costs, save_cost_tables

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    # Not job_device: these jobs time torch's default (fastest) kernels, not its deterministic ones.
    device = resolve_device(snakemake.params.device)
    costs = snakemake.params.costs
    with np.load(snakemake.input[0]) as arrays:
        data = SimulatedData.from_arrays(arrays)
    rows = []
    for name in snakemake.params.models:
        print(f"measuring {name} on {device} ...", flush=True)
        row = measure_model_costs(
            name,
            snakemake.params.models[name],
            data,
            snakemake.params.seed,
            device,
            batch_size=costs["batch_size"],
            n_epochs=costs["n_epochs"],
            n_timings=costs["n_timings"],
        )
        print(f"  step {row['batch_ms_mean']:.2f} ms, predict {row['predict_ms_mean']:.2f} ms", flush=True)
        rows.append(row)
    markdown = save_cost_tables(
        rows, snakemake.output.tsv, snakemake.output.md, snakemake.params.provenance, snakemake.output.html
    )
    print(markdown)
