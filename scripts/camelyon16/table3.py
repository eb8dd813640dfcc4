"""Table 3 (test AUC over seeds), ROC curves and per-slide instance-score strips for Camelyon16."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.camelyon16.figures import instance_strips, roc_figure
from mixmil_workflow.camelyon16.study import instance_auc, run_table, strip_selection, table3
from mixmil_workflow.io import log_to, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    types = snakemake.params.types
    runs = snakemake.params.runs
    run_rows = run_table(
        (model, types[model], seed, path) for (model, seed), path in zip(runs, snakemake.input.predictions, strict=True)
    )
    numeric, display = table3(run_rows)
    save_table(snakemake.output.runs, run_rows.round(4), provenance=snakemake.params.provenance)
    save_table(snakemake.output.tsv, numeric.round(4), provenance=snakemake.params.provenance)
    save_table([snakemake.output.md, snakemake.output.html], display, provenance=snakemake.params.provenance)
    print(display.to_markdown(index=False))

    predictions = {
        run: pd.read_csv(path, sep="\t") for run, path in zip(runs, snakemake.input.predictions, strict=True)
    }
    roc_figure(predictions, types, numeric, [snakemake.output.roc, snakemake.output.roc_svg])

    truth = pd.read_csv(snakemake.input.truth, sep="\t") if "truth" in snakemake.input.keys() else None
    files = dict(zip(runs, snakemake.input.instance_scores, strict=True))
    auc = instance_auc(((m, s, path) for (m, s), path in files.items()), truth) if truth is not None else None
    save_table(
        snakemake.output.instance_auc,
        auc if auc is not None else pd.DataFrame(columns=["model", "seed", "instance_auc"]),
        provenance=snakemake.params.provenance,
    )
    if auc is not None and len(auc):
        print(auc.groupby("model")["instance_auc"].agg(["mean", "std"]))
    strip_files, slides = strip_selection(files, predictions, snakemake.params.heatmap_slides)
    instance_strips(strip_files, slides, truth, [snakemake.output.strips])
