"""The spatial comparison over repeats (mean and standard error) and the spatial maps of repeat 0."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.io import log_to, read_table, save_table
from mixmil_workflow.studies.simulation_plots import save_figure
from mixmil_workflow.studies.smmile import patch_expectation, spatial_maps, summarise_spatial

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    models = snakemake.params.models
    metrics = pd.concat([read_table(p) for p in snakemake.input.metrics], ignore_index=True)
    summary = summarise_spatial(metrics, models)
    print(summary.round(3).to_string(index=False))
    save_table(snakemake.output.tsv, summary, snakemake.params.provenance)
    save_table([snakemake.output.md, snakemake.output.html], summary.round(3), snakemake.params.provenance)
    expectation = patch_expectation(summary, snakemake.params.families)
    print(expectation.round(3).to_string(index=False))
    save_table(
        [snakemake.output.expectation, snakemake.output.expectation_html],
        expectation.round(4),
        snakemake.params.provenance,
    )
    patches = {model: read_table(path) for model, path in zip(models, snakemake.input.patches, strict=True)}
    save_figure(spatial_maps(patches), snakemake.output.maps)
