"""Convert the per-slide feature CSVs of the archive into one AnnData file and a slide table."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.camelyon16 import convert_to_h5ad
from mixmil_workflow.io import log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    slides = convert_to_h5ad(snakemake.input[0], snakemake.output.h5ad, snakemake.output.slides)
    print(slides.groupby(["official_split", "label"]).agg(slides=("slide", "size"), patches=("n_instances", "sum")))
