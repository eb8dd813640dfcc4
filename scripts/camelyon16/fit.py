"""Train one model with one seed on the Camelyon16 training slides; predict validation and test slides."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd
import torch

from mixmil_workflow.camelyon16 import Preprocessing, load_split
from mixmil_workflow.camelyon16.study import EVALUATED_SPLITS, run_model, slide_metrics
from mixmil_workflow.io import job_device, log_to, save_npz, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    device = job_device(snakemake.params.device)
    # The job's threads (the spec's, lowered by Snakemake to --cores) also parallelise the trees.
    spec = {**snakemake.params.model, "threads": snakemake.threads}
    print(f"fitting {snakemake.wildcards.model} ({spec}) on {device}, seed {snakemake.params.seed}", flush=True)
    slides = pd.read_csv(snakemake.input.splits, sep="\t")
    preprocessing = Preprocessing.load(snakemake.input.preprocessing)
    present = ["train", *(s for s in EVALUATED_SPLITS if (slides["split"] == s).any())]
    splits = {name: load_split(snakemake.input.h5ad, slides, name, preprocessing) for name in present}
    for name, split in splits.items():
        print(f"{name}: {split.bags.n_bags} slides, {split.bags.n_instances} patches x {split.bags.n_features}")
    model_path = getattr(snakemake.output, "model", None)  # config save_models.camelyon16
    predictions, instance_scores = run_model(spec, splits, snakemake.params.seed, device, model_path)
    print(f"trained in {predictions['train_seconds'].iloc[0]:.1f} s; {slide_metrics(predictions)}")
    save_table(snakemake.output.predictions, predictions)
    save_npz(snakemake.output.instance_scores, **instance_scores)
