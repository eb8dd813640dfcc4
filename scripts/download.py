"""Download one file of the source sheet (resumable, retried, size/sha256 checked; nothing is left
at the output path unless the checks pass)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.download import Source, download
from mixmil_workflow.io import log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    source = Source(**snakemake.params.source)
    download(source, snakemake.output[0], retries=snakemake.params.retries)
    print(f"downloaded {source.name} from {source.url} to {snakemake.output[0]}")
