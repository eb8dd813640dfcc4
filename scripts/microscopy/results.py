"""Table 2 (main components), Table E.3 (F1 per MoA) and Table E.4 (every number of components) from
all held-out predictions; mean and standard error over the repeats."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import json

from mixmil_workflow.io import log_to, save_table
from mixmil_workflow.microscopy.study import (
    METRICS,
    markdown,
    read_predictions,
    run_metrics,
    table2,
    table_e3,
    table_e4,
)

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    runs = [(m, k, r, path) for (m, k, r), path in zip(params.runs, snakemake.input.predictions, strict=True)]
    metrics = run_metrics(read_predictions(runs))
    weights = sorted({json.load(open(path))["weights"] for path in snakemake.input.embeddings})
    provenance = dict(params.provenance) | {"note": "embeddings: " + "; ".join(weights)}
    main = params.main_components
    t2 = table2(metrics, main)
    e3 = table_e3(metrics, main)
    e4 = table_e4(metrics)
    print(f"embeddings: {'; '.join(weights)}")
    t2_md = markdown(t2, METRICS, ["model", "n_repeats"])
    print(t2_md.to_string(index=False))
    save_table(snakemake.output.runs, metrics, provenance)
    save_table(snakemake.output.table2, t2, provenance)
    save_table([snakemake.output.table2_md, snakemake.output.table2_html], t2_md, provenance)
    save_table(snakemake.output.table_e3, e3, provenance)
    e3_md = markdown(e3.rename(columns={"f1_mean": "F1_mean", "f1_se": "F1_se"}), {"F1": "F1"}, ["moa", "model"], 3)
    save_table([snakemake.output.table_e3_md, snakemake.output.table_e3_html], e3_md, provenance)
    save_table(snakemake.output.table_e4, e4, provenance)
    e4_md = markdown(e4, METRICS, ["model", "pcs"], 3)
    save_table([snakemake.output.table_e4_md, snakemake.output.table_e4_html], e4_md, provenance)
