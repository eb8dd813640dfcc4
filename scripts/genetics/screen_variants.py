"""The GLMM screen's chunks gathered in universe order, with each variant's eQTL cell types and genes."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
import pandas as pd

from mixmil_workflow.io import log_to, read_table, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    universe = read_table(snakemake.input.universe)
    screen = pd.concat([read_table(path) for path in snakemake.input.chunks], ignore_index=True)
    if list(screen["rsid"]) != list(universe["rsid"]):
        raise RuntimeError("the screen's chunks do not cover the variant universe in order; rerun the chunks")
    if screen["spearman"].isna().any():
        raise RuntimeError("the GLMM screen produced NaN correlations")
    screen = screen.merge(universe[["rsid", "cell_types", "genes"]], on="rsid")
    print(screen.sort_values("spearman", ascending=False).head(20).to_string(index=False))
    save_table(snakemake.output[0], screen.round(6), provenance=snakemake.params.provenance)
