"""Demo only: where each model ranks the planted kinds of cell (responders, control-like cells,
artefacts) within their wells, from the generator's truth."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.io import log_to, read_table, save_table
from mixmil_workflow.microscopy.crops import read_crop_table
from mixmil_workflow.microscopy.study import attach_kinds, held_out_cells, kind_ranks, number_cells

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    bags = read_table(snakemake.input.bags).astype({"bag": str})
    tables = [read_crop_table(p) for p in snakemake.input.tables]
    cells = number_cells(pd.concat(tables, ignore_index=True))
    truth = pd.read_csv(snakemake.input.truth, sep="\t", dtype={"plate": str, "well": str})
    cells = attach_kinds(cells, truth)
    rows = []
    for (model, repeat), weight_file, prediction_file in zip(
        snakemake.params.runs, snakemake.input.weights, snakemake.input.predictions, strict=True
    ):
        weighted = held_out_cells(weight_file, prediction_file, bags, cells)
        if not weighted.empty:
            rows.append({"model": model, "repeat": repeat} | kind_ranks(weighted))
    runs = pd.DataFrame(rows)
    summary = runs.drop(columns="repeat").groupby("model", sort=False).mean().reset_index()
    print(summary.round(3).to_string(index=False))
    save_table(snakemake.output.tsv, runs, snakemake.params.provenance)
    save_table([snakemake.output.md, snakemake.output.html], summary.round(3), snakemake.params.provenance)
