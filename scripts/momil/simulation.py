"""One repeat of the MoMIL comparison on a freshly simulated sparse multi-task dataset."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import torch

from mixmil_workflow.io import job_device, log_to, save_table
from mixmil_workflow.models.momil_tasks import read_task_similarity
from mixmil_workflow.simulate.multitask import MultitaskParams, simulate_multitask
from mixmil_workflow.studies.momil import VARIANTS, run_comparison, summarise

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params
    simulation = {k: tuple(v) if isinstance(v, list) else v for k, v in params.simulation.items()}
    data = simulate_multitask(MultitaskParams(**simulation), params.seed)
    similarity = None
    if snakemake.input.similarity:
        similarity = read_task_similarity(snakemake.input.similarity[0], data.task_names)
        print(f"biological similarity from {snakemake.input.similarity[0]}")
    spec = dict(params.model) | {"device": job_device(params.device), "progress": False}
    print(f"{data.n_tasks} tasks ({data.primary.sum()} primary), {len(data.x)} bags; MoMIL {spec}; seed {params.seed}")
    results, selection = run_comparison(
        data,
        spec,
        params.seed,
        params.variants or VARIANTS,
        **params.selection,
        **params.imputation,
        mixmil_spec=params.mixmil,
        similarity=similarity,
        save_dir=getattr(snakemake.output, "model", None),  # config save_models.momil
    )
    print(summarise(results).round(3).to_string(index=False))
    save_table(snakemake.output.results, results)
    save_table(snakemake.output.selection, selection)
