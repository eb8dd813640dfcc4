"""One chunk of the GLMM screen: out-of-fold Spearman of a binomial GLMM per variant (Appendix D.1)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import pandas as pd

from mixmil_workflow.genetics.labels import glmm_screen, screen_chunk_columns
from mixmil_workflow.io import log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    donors = read_table(snakemake.input.donors)
    dosages = pd.read_csv(snakemake.input.dosages, sep="\t", index_col="sample").loc[donors["sample"]]
    means = np.load(snakemake.input.means)
    covariates = donors.drop(columns=["donor_id", "sample"]).to_numpy(float)
    first, stop = screen_chunk_columns(dosages.shape[1], int(snakemake.wildcards.chunk), params.n_chunks)
    print(f"chunk {snakemake.wildcards.chunk} of {params.n_chunks}: variants {first}-{stop - 1} of {dosages.shape[1]}")
    screen = glmm_screen(means, dosages.iloc[:, first:stop], covariates, params.n_folds, params.seed, first=first)
    save_table(snakemake.output[0], screen)
