"""The reproduction scorecard of this run: every published value with a counterpart here, ours beside it."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)

from mixmil_workflow.io import atomic_path, log_to, save_table
from mixmil_workflow.scorecard import html, intro, markdown, scorecard
from mixmil_workflow.workflow.provenance import provenance_footer, provenance_lines

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    tables = {key: path for key, path in snakemake.input.items()}
    card = scorecard(tables, snakemake.params.models)
    print(intro(card))
    save_table(snakemake.output.tsv, card, snakemake.params.provenance)
    text = "# Reproduction scorecard\n\n" + markdown(card)
    with atomic_path(snakemake.output.md) as tmp:
        tmp.write_text(text + provenance_footer(snakemake.params.provenance))
    with atomic_path(snakemake.output.html) as tmp:
        tmp.write_text(html(card, provenance_lines(snakemake.params.provenance)))
