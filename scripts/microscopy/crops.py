"""Single-cell crops of one plate around the nucleus centres, illumination-corrected."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import pandas as pd

from mixmil_workflow.io import log_to, read_table
from mixmil_workflow.microscopy.crops import crop_plate, save_crops

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    plate = snakemake.wildcards.plate
    images = read_table(snakemake.input.images)
    images = images[images["plate"].astype(str) == plate]
    nuclei = pd.read_csv(snakemake.input.nuclei, sep="\t", dtype={"plate": str, "well": str})
    nuclei = nuclei[nuclei["plate"] == plate]
    with np.load(snakemake.input.illumination) as f:
        functions = {channel: f[channel] for channel in f.files}
    crops, table, at_border = crop_plate(snakemake.input.zip, functions, images, nuclei, snakemake.params.box)
    print(
        f"{plate}: {len(crops)} crops of {snakemake.params.box} px from {len(images)} fields; "
        f"{at_border} nuclei too close to the border left out"
    )
    save_crops(snakemake.output.crops, snakemake.output.table, crops, table)
