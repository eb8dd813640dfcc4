"""Every Camelyon16 slide's patches in one spatial dataset (PCA on the training patches)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from pathlib import Path

from mixmil_workflow.camelyon16.slides.features import assemble_spatial, slide_table
from mixmil_workflow.io import log_to, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    table = slide_table(Path(snakemake.input.reference).parent.parent, params.classes)  # <root>/testing/reference.csv
    files = {Path(p).stem: p for p in snakemake.input.patches}
    table = table[table["slide"].isin(files)].reset_index(drop=True)
    data, kept = assemble_spatial(table, files, params.n_components, params.seed)
    data.save(snakemake.output.data)
    # row k of this table is slide k of the dataset (the "slide" index of the fit outputs)
    save_table(snakemake.output.table, kept.drop(columns="path").reset_index(drop=True))
