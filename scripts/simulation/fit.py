"""Fit one model on each input dataset (its seed beside it) and predict its test bags: the simulation
study's every repeat of a scenario, or the sweep's one dataset."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import torch

from mixmil_workflow.io import job_device, log_to, save_npz
from mixmil_workflow.simulate.paper import SimulatedData
from mixmil_workflow.studies.simulation import run_model

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**snakemake.params.model, "threads": snakemake.threads}
    wc = snakemake.wildcards
    outputs = snakemake.output.predictions  # one per repeat (the simulation) or one (the sweep)
    models = getattr(snakemake.output, "model", [None] * len(outputs))  # config save_models.simulation / .sweep
    for data_path, out_path, seed, model_path in zip(
        snakemake.input, outputs, snakemake.params.seeds, models, strict=True
    ):
        print(f"fitting {wc.model} ({spec}) on {data_path} ({device}), seed {seed}", flush=True)
        with np.load(data_path) as arrays:
            data = SimulatedData.from_arrays(arrays)
        result = run_model(spec, data, seed, device, save_to=model_path)
        print(f"trained in {float(result['train_seconds']):.1f} s")
        save_npz(out_path, **result)
