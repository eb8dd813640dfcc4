"""scVI embeddings of the selected cells (Table D.1), stored in obsm["X_scvi"]; the trained model saved
beside them (scvi-tools' format, loadable with scvi.model.SCVI.load)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import anndata
import torch

from mixmil_workflow.genetics.cells import ScviSettings, scvi_embedding
from mixmil_workflow.io import atomic_path, job_device, log_to

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    settings = ScviSettings(**snakemake.params.scvi)
    adata = anndata.read_h5ad(snakemake.input[0])
    print(f"scVI on {adata.n_obs} cells x {adata.n_vars} genes, {settings}, seed {snakemake.params.seed}")
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    adata.obsm["X_scvi"] = scvi_embedding(
        adata, settings, snakemake.params.seed, accelerator=accelerator, model_dir=snakemake.output.model
    )
    with atomic_path(snakemake.output.h5ad) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
