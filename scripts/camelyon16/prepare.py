"""Hold out validation slides and fit the standardisation (and optional PCA) on the training slides."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.camelyon16 import assign_splits, fit_preprocessing
from mixmil_workflow.io import log_to, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    slides = pd.read_csv(snakemake.input.slides, sep="\t")
    splits = assign_splits(slides, snakemake.params.validation_fraction, snakemake.params.seed)
    print(splits.groupby(["split", "label"]).size().rename("slides"))
    preprocessing = fit_preprocessing(snakemake.input.h5ad, splits, snakemake.params.pca_components)
    if preprocessing.components.shape[0]:
        explained = preprocessing.explained_variance_ratio.sum()
        print(f"PCA: {preprocessing.components.shape[0]} components explain {explained:.1%} of the variance")
    save_table(snakemake.output.splits, splits)
    preprocessing.save(snakemake.output.preprocessing)
