"""Test-set Spearman and instance-retrieval AUC of one fitted model."""

import numpy as np

from mixmil_workflow.io import log_to, save_table
from mixmil_workflow.simulation import SimulatedData
from mixmil_workflow.simulation_study import evaluate

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    with np.load(snakemake.input.data) as arrays:
        data = SimulatedData.from_arrays(arrays)
    with np.load(snakemake.input.predictions) as arrays:
        predictions = dict(arrays)
    table = evaluate(data, predictions, snakemake.params.top_fraction)
    print(table.to_string(index=False))
    save_table(snakemake.output[0], table)
