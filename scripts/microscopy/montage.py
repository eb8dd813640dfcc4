"""Fig. 4 / E.4: the highest and lowest weighted held-out cells of one compound (repeat 0), per model."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import json

import numpy as np
import pandas as pd

from mixmil_workflow.io import log_to, read_table
from mixmil_workflow.microscopy.crops import read_crop_table, read_crops
from mixmil_workflow.microscopy.study import held_out_cells, montage_figure, number_cells, top_bottom

snakemake = snakemake  # noqa: F821  (injected by Snakemake)


def crops_of(chosen: pd.DataFrame, crop_files: dict) -> np.ndarray:
    if chosen.empty:
        return np.zeros((0, 3, 1, 1), dtype=np.uint8)
    rows = zip(chosen["plate"], chosen["plate_row"], strict=True)
    return np.stack([read_crops(crop_files[plate], row, row + 1)[0] for plate, row in rows])


with log_to(snakemake.log[0]):
    params, inputs = snakemake.params, snakemake.input
    bags = read_table(inputs.bags).astype({"bag": str})
    compounds = sorted(set(bags["compound"]))
    if params.compound not in compounds:
        raise ValueError(f"microscopy.montage.compounds: {params.compound!r} has no wells; compounds: {compounds}")
    tables = [read_crop_table(p) for p in inputs.tables]
    cells = number_cells(pd.concat(tables, ignore_index=True))
    crop_files = {t["plate"].iloc[0]: path for t, path in zip(tables, inputs.crops, strict=True) if len(t)}
    weights_note = "; ".join(sorted({json.load(open(p))["weights"] for p in inputs.embeddings}))
    panels = []
    for model, weights, predictions in zip(params.models, inputs.weights, inputs.predictions, strict=True):
        weighted = held_out_cells(weights, predictions, bags, cells)
        if weighted.empty:
            print(f"{model}: no instance weights; left out")
            continue
        top, bottom = top_bottom(weighted, bags, params.compound, params.n_cells)
        print(f"{model}: relative weights of the top cells {top['weight'].round(2).tolist()}")
        print(f"{model}: relative weights of the bottom cells {bottom['weight'].round(2).tolist()}")
        panels.append((model, crops_of(top, crop_files), crops_of(bottom, crop_files)))
    moa = bags.loc[bags["compound"] == params.compound, "moa"].iloc[0]
    title = (
        f"{params.compound} ({moa}): top and bottom {params.n_cells} held-out cells, repeat 0. "
        f"Embeddings: {weights_note}"
    )
    montage_figure(panels, title, snakemake.output[0])
