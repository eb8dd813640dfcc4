"""One study's training-curve figure: the loss per epoch of every model's fits."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)

from mixmil_workflow.io import log_to
from mixmil_workflow.studies.training_curves import read_histories, training_curves_figure

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    curves = {}
    for path, model in zip(snakemake.input, snakemake.params.models, strict=True):
        curves.setdefault(model, []).extend(read_histories(path))
    counts = {model: len(lines) for model, lines in curves.items()}
    print(f"{snakemake.params.title}: training curves per model {counts}")
    training_curves_figure(curves, f"Training loss per epoch: {snakemake.params.title}", snakemake.output[0])
