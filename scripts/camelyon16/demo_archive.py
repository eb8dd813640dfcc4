"""Generate the demo Camelyon16 feature archive (DSMIL layout) and its patch truth."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.camelyon16 import DemoSpec, write_demo_archive
from mixmil_workflow.io import log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    spec = DemoSpec.from_config(snakemake.params.demo)
    print(f"writing a demo archive: {spec}, seed {snakemake.params.seed}")
    write_demo_archive(snakemake.output.archive, snakemake.output.truth, spec, snakemake.params.seed)
