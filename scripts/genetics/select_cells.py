"""Lymphoid cells (CD4, CD8, NK) with raw counts, reduced to the highly variable genes."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import anndata

from mixmil_workflow.genetics.cells import highly_variable_genes, select_lymphoid
from mixmil_workflow.io import atomic_path, log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    # backed: only the lymphoid rows of the raw counts are read into memory (the real file holds
    # 1.25 M cells x 35 k genes, and some versions a normalised copy next to the counts)
    adata = anndata.read_h5ad(snakemake.input[0], backed="r")
    print(f"{snakemake.input[0]}: {adata.n_obs} cells x {adata.n_vars} genes")
    cells = select_lymphoid(adata, snakemake.input[0])
    print(f"lymphoid cells: {cells.n_obs} (counts from {cells.uns['counts_layout']})")
    print(cells.obs["cell_group"].value_counts().to_string())
    cells = highly_variable_genes(cells, snakemake.params.n_top_genes)
    print(f"highly variable genes: {cells.n_vars}; donors: {cells.obs['donor_id'].nunique()}")
    with atomic_path(snakemake.output[0]) as tmp:
        cells.write_h5ad(tmp, compression="gzip")
