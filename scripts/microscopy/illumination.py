"""Illumination correction functions of one plate (one per channel)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to
from mixmil_workflow.microscopy.illumination import illumination_functions, plate_channel_members, save_functions

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    members = plate_channel_members(snakemake.input[0])
    print(f"{snakemake.input[0]}: {sum(map(len, members.values()))} TIFFs, {len(members['DAPI'])} fields per channel")
    functions = illumination_functions(snakemake.input[0], snakemake.params.sigma, snakemake.params.robust_percentile)
    for channel, function in functions.items():
        print(f"{channel}: {function.shape}, correction range {function.min():.3f}-{function.max():.3f}")
    save_functions(snakemake.output[0], functions)
