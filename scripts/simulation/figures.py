"""Fig. 2 (MIL models: Spearman, retrieval AUC per axis), Fig. E.1 (ii) (GLMM, RF, XGBoost against MixMIL)
and Fig. E.2 (mean-field vs full-rank retrieval)."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to, read_table
from mixmil_workflow.studies.simulation_plots import axis_figure, figure_model_sets, model_styles, save_figure

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    table = read_table(snakemake.input.axes)
    models = list(snakemake.params.models)
    specs = {m: dict(spec) for m, spec in dict(snakemake.params.model_specs).items()}
    sets = figure_model_sets(models, specs)
    styles = model_styles(models, specs)
    defaults = dict(snakemake.params.defaults)
    out = snakemake.output
    for metric, png, svg in (("spearman", out.spearman, out.spearman_svg), ("instance_auc", out.auc, out.auc_svg)):
        save_figure(axis_figure(table, metric, sets["mil"], defaults, styles=styles), png, svg)
    title = "MixMIL against the GLMM, Random Forest and XGBoost"
    fig = axis_figure(table, "spearman", sets["traditional"], defaults, title=title, styles=styles)
    save_figure(fig, out.traditional, out.traditional_svg)
    title = "MixMIL: full-rank vs mean-field posterior"
    fig = axis_figure(table, "instance_auc", sets["posteriors"], defaults, title=title, styles=styles)
    save_figure(fig, out.mean_field, out.mean_field_svg)
