"""One Camelyon16 slide: tissue patches on their grid, lesion labels from the split's annotation zip,
ResNet50 features."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import numpy as np
import torch

from mixmil_workflow.camelyon16.slides.features import build_patch_encoder, lesions_from_zip, slide_patch_features
from mixmil_workflow.io import job_device, log_to, save_npz

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params
    slide = snakemake.wildcards.slide
    lesions = lesions_from_zip(snakemake.input.annotations, slide, params.classes)
    encoder = build_patch_encoder(params.checkpoint, params.seed)
    patches = slide_patch_features(
        snakemake.input.slide,
        lesions,
        encoder,
        patch_size=params.patch_size,
        level=params.level,
        min_tissue=params.min_tissue,
        batch_size=params.batch_size,
        device=job_device(params.device),
    )
    counts = np.bincount(patches["label"] + 1, minlength=3)
    print(
        f"{slide}: {len(patches['coords'])} tissue patches of {params.patch_size} px at level {params.level} "
        f"({counts[2:].sum()} lesion (per category {counts[2:].tolist()}), {counts[0]} excluded; "
        f"{len(lesions.tumour)} lesion polygons); "
        f"weights {params.checkpoint or 'random (seeded)'}"
    )
    save_npz(snakemake.output[0], **patches)
