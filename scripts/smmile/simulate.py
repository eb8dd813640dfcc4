"""One spatial slide simulation (patch grids with a tumour mask) for the SMMILe comparison."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np

from mixmil_workflow.io import log_to
from mixmil_workflow.simulate.spatial import SpatialParams, simulate_spatial

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in snakemake.params.simulation.items()}
    data = simulate_spatial(SpatialParams(**options), snakemake.params.seed)
    sizes = np.diff(data.offsets)
    holds = data.slide_categories(slice(None))
    print(
        f"{data.task} task: {data.n_slides} slides ({int(holds.any(1).sum())} with tumour; per category "
        f"{holds.sum(0).tolist()}), {len(data.x)} patches ({sizes.min()}-{sizes.max()} per slide), "
        f"{int((data.patch_label > 0).sum())} tumour patches, {int(data.mimic.sum())} mimics; "
        f"seed {snakemake.params.seed}"
    )
    data.save(snakemake.output[0])
