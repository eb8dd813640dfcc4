"""Generate the OneK1K-format raw data of the offline demo (h5ad, VCF, eSNP tables, truth)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from pathlib import Path

from mixmil_workflow.genetics.demo import OneK1KDemoSpec, write_onek1k_demo
from mixmil_workflow.io import log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    spec = OneK1KDemoSpec.from_config(snakemake.params.demo)
    print(f"generating OneK1K demo data: {spec}")
    paths = write_onek1k_demo(Path(snakemake.output.h5ad).parent, spec, snakemake.params.seed)
    for name, path in paths.items():
        print(f"  {name}: {path}")
