"""Simulate one dataset per output file, each with its own seed (the simulation study: every repeat of a
scenario; the sweep: one repeat)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to, save_npz
from mixmil_workflow.studies.simulation import simulate_scenario

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    for path, seed in zip(snakemake.output, snakemake.params.seeds, strict=True):
        print(f"simulating {snakemake.wildcards.scenario} -> {path} (seed {seed}): {snakemake.params.simulation}")
        data = simulate_scenario(snakemake.params.simulation, seed)
        save_npz(path, **data.to_arrays())
