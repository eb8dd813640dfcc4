"""Fit one model on a spatial simulation's training slides; score the test slides' slides and patches."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd
import torch

from mixmil_workflow.io import job_device, log_to, save_table
from mixmil_workflow.simulate.spatial import SpatialData
from mixmil_workflow.studies.smmile import build_spatial_model, fit_and_score, localisation_metrics

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params
    data = SpatialData.load(snakemake.input[0])
    model = build_spatial_model(dict(params.spec), params.seed, job_device(params.device), data.task, data.n_types)
    print(f"{snakemake.wildcards.model}: {dict(params.spec)}; {data.task} task; seed {params.seed}")
    model_path = getattr(snakemake.output, "model", None)  # config save_models.smmile
    slides, patches = fit_and_score(model, dict(params.spec), data, save_to=model_path)
    metrics = localisation_metrics(slides, patches)
    print(", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    save_table(snakemake.output.slides, slides)
    save_table(snakemake.output.patches, patches)
    save_table(snakemake.output.metrics, pd.DataFrame([{"model": snakemake.wildcards.model, **metrics}]))
