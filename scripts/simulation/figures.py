"""Fig. 2 (MIL models: Spearman, retrieval AUC per axis), Fig. E.1 (ii) (GLMM, RF, XGBoost) and Fig. E.2
(mean-field vs full-rank retrieval)."""

from mixmil_workflow.io import log_to, read_table
from mixmil_workflow.plots import axis_figure, figure_model_sets, save_figure

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    table = read_table(snakemake.input.axes)
    models = list(snakemake.params.models)
    sets = figure_model_sets(models, dict(snakemake.params.model_types))
    defaults = dict(snakemake.params.defaults)
    out = snakemake.output
    save_figure(axis_figure(table, "spearman", sets["mil"], defaults), out.spearman, out.spearman_svg)
    save_figure(axis_figure(table, "instance_auc", sets["mil"], defaults), out.auc, out.auc_svg)
    save_figure(
        axis_figure(table, "spearman", sets["traditional"], defaults, title="GLMM, Random Forest and XGBoost"),
        out.traditional,
        out.traditional_svg,
    )
    posteriors = [m for m in ("mixmil", "mixmil_mean_field") if m in models]
    save_figure(
        axis_figure(table, "instance_auc", posteriors, defaults, title="MixMIL: full-rank vs mean-field posterior"),
        out.mean_field,
        out.mean_field_svg,
    )
