"""Generated Camelyon16-format raw data (pyramidal TIFF slides, lesion XML zips, reference.csv)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.camelyon16.slides.demo import SlideDemoParams, write_demo_slides
from mixmil_workflow.io import log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = SlideDemoParams(**snakemake.params.demo)
    written = write_demo_slides(snakemake.params.root, params, snakemake.params.seed)
    print(f"{len(written)} files under {snakemake.params.root} ({params}); seed {snakemake.params.seed}")
    missing = sorted(set(map(str, snakemake.output)) - {str(p) for p in written})
    if missing:
        raise RuntimeError(f"the demo did not write {missing[:3]}")
