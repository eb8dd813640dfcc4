"""One repeat's instances: PCA fitted on the training wells' cells, wells as bags with the held-out
split as fold and the plate as covariates."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import json

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path, log_to, save_table
from mixmil_workflow.microscopy.features import gather_cells, repeat_features

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    repeat = int(snakemake.wildcards.repeat)
    x, cells = gather_cells(snakemake.input.embeddings, snakemake.input.crops)
    wells = pd.read_csv(snakemake.input.wells, sep="\t", comment="#", dtype={"plate": str, "well": str, "bag": str})
    params = snakemake.params
    z, bags, summary = repeat_features(
        x, cells, wells, repeat, params.n_components, params.seed, params.validation_fraction
    )
    explained = np.cumsum(summary["explained_variance"])
    print(
        f"repeat {repeat}: {len(z)} cells in {len(bags)} wells ({(bags['split'] == 'test').sum()} test); PCA on "
        f"{summary['training_cells']} training cells, {len(explained)} components explain {explained[-1]:.3f}"
    )
    with atomic_path(snakemake.output.matrix) as tmp, open(tmp, "wb") as fh:
        np.save(fh, z)
    save_table(snakemake.output.bags, bags)
    with atomic_path(snakemake.output.pca) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
