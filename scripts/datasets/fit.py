"""Fit one model for one label on each (repeat, fold) of this job; predict the held-out bags."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import torch

from mixmil_workflow.io import job_device, log_to, save_npz, save_table
from mixmil_workflow.own_bags.crossval import FitSettings, fit_folds
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.preprocess import Preprocessing
from mixmil_workflow.own_bags.study import load_prepared

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params.settings
    settings = FitSettings(
        label=LabelSpec(**params["label"]),
        covariates=list(params["covariates"]),
        preprocessing=Preprocessing.from_config(params["preprocessing"], params["embedding"]),
        id_column=params["id_column"],
        class_weight=params["class_weight"],
        search=params["search"],
        inner_folds=params["inner_folds"],
        device=job_device(snakemake.params.device),
    )
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**snakemake.params.model, "threads": snakemake.threads}
    folds = [tuple(f) for f in snakemake.params.folds]
    wc = snakemake.wildcards
    print(
        f"{wc.dataset}: {wc.model} ({spec}) for {settings.label}; {len(folds)} fit(s) {folds}; "
        f"preprocessing: {settings.preprocessing.describe()}; class weights: {settings.class_weight}"
    )
    bags, table = load_prepared(snakemake.input.matrix, snakemake.input.table, settings.id_column)
    save_dir = getattr(snakemake.output, "model", None)  # config save_models.datasets
    predictions, weights, timings, search = fit_folds(
        spec, bags, table, settings, folds, snakemake.params.seeds, save_dir=save_dir
    )
    save_table(snakemake.output.predictions, predictions)
    save_npz(snakemake.output.weights, **weights)
    save_table(snakemake.output.timings, timings)
    save_table(snakemake.output.search, search)
