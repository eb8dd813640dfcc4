"""The genetic labels: screened variants (out-of-fold Spearman above the threshold), LD-clumped."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from pathlib import Path

import pandas as pd

from mixmil_workflow.genetics.labels import label_steps
from mixmil_workflow.genetics.plink import clump, plink_memory_mb
from mixmil_workflow.io import log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    screen = read_table(snakemake.input.screen)
    passed = screen[screen["spearman"] > snakemake.params.min_spearman]
    print(f"{len(passed)} of {len(screen)} variants pass the GLMM screen (Spearman > {snakemake.params.min_spearman})")
    bed = Path(snakemake.input.bed[0]).with_suffix("")
    work = Path(snakemake.output.labels).with_name("clump")
    index = clump(
        bed,
        passed,
        work,
        r2=snakemake.params.r2,
        kb=snakemake.params.kb,
        threads=snakemake.threads,
        memory_mb=plink_memory_mb(snakemake.resources.mem_mb),
    )
    labels = passed.set_index("rsid").loc[index].reset_index()
    print(f"{len(labels)} labels after LD clumping (r2 {snakemake.params.r2}, {snakemake.params.kb} kb)")
    if labels.empty:
        raise RuntimeError(
            "no variant passed the GLMM screen and clumping: no genetic labels to train on "
            "(check the embeddings, or lower genetics.screen.min_spearman)"
        )
    save_table(snakemake.output.labels, labels.round(6), provenance=snakemake.params.provenance)
    dosages = pd.read_csv(snakemake.input.dosages, sep="\t", index_col="sample")[list(labels["rsid"])]
    save_table(snakemake.output.dosages, dosages.reset_index())
    steps = label_steps(len(screen), len(passed), len(labels), snakemake.params.min_spearman)
    save_table([snakemake.output.md, snakemake.output.html], steps, provenance=snakemake.params.provenance)
