"""Simulate one scenario x repeat of the simulation study."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to, save_npz
from mixmil_workflow.studies.simulation import simulate_scenario

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    print(
        f"simulating {snakemake.wildcards.scenario} repeat {snakemake.wildcards.repeat}: {snakemake.params.simulation}"
    )
    data = simulate_scenario(snakemake.params.simulation, snakemake.params.seed)
    save_npz(snakemake.output[0], **data.to_arrays())
