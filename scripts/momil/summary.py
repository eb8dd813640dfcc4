"""The MoMIL comparison over repeats: mean test ROC-AUC over primary tasks per variant."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.io import log_to, read_table, save_table
from mixmil_workflow.studies.momil import summarise

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    results = pd.concat(
        [read_table(path).assign(repeat=k) for k, path in enumerate(snakemake.input)], ignore_index=True
    )
    summary = summarise(results)
    print(summary.round(3).to_string(index=False))
    save_table(snakemake.output.tsv, summary, snakemake.params.provenance)
    save_table([snakemake.output.md, snakemake.output.html], summary.round(3), snakemake.params.provenance)
