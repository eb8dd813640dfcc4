"""Generate the BBBC021-format demo: plate zips, metadata CSVs, nucleus SQLite and the truth table."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from pathlib import Path

from mixmil_workflow.io import log_to
from mixmil_workflow.microscopy.demo import DemoSpec, write_demo

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    spec = DemoSpec.from_config(snakemake.params.demo)
    print(f"BBBC021 demo: {spec}; seed {snakemake.params.seed}")
    paths = write_demo(Path(snakemake.output.image).parent, spec, snakemake.params.seed)
    for name, path in paths.items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
