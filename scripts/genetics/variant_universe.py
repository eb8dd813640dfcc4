"""The variant universe: lead cis-eSNPs of the configured lymphoid cell types, matched to the VCF."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.genetics.variants import match_to_vcf, read_esnp_tables, universe_steps, variant_universe
from mixmil_workflow.io import log_to, save_table

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    tables = dict(zip(snakemake.params.codes, snakemake.input.esnp, strict=True))
    esnps = read_esnp_tables(tables, max_fdr=snakemake.params.max_fdr)
    universe = variant_universe(esnps)
    kept, counts = match_to_vcf(universe, snakemake.input.vcf)
    print(counts)
    save_table(snakemake.output.table, kept, provenance=snakemake.params.provenance)
    steps = universe_steps(len(esnps), len(tables), snakemake.params.max_fdr, counts)
    save_table([snakemake.output.md, snakemake.output.html], steps, provenance=snakemake.params.provenance)
