"""The variant universe of the genetics branch (Appendix D.1): lead cis-eSNPs of the lymphoid cell types,
de-duplicated by rsID and matched to the genotype VCF.

The eSNP tables carry GRCh37 positions and the imputed VCF GRCh38 ones, so variants are matched by rsID,
and alleles are checked (the same two alleles, in either order); mismatches are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

# Columns the branch needs from the onek1k.org eSNP tables (upper case, selected by name).
REQUIRED_ESNP_COLUMNS = ("RSID", "CHR", "POS", "A1", "A2", "GENE_ID", "SPEARMANS_RHO", "P_VALUE", "FDR")


class VariantError(ValueError):
    """Bad eSNP or genotype input; the message names the file, the field and the fix."""


def read_esnp_tables(tables: Mapping[str, str | Path], max_fdr: float = 0.05) -> pd.DataFrame:
    """``tables``: cell-type code -> eSNP table path. Returns the rows with FDR <= ``max_fdr``, with a
    ``cell_type_code`` column."""
    frames = []
    for code, path in tables.items():
        table = pd.read_csv(path, sep="\t", dtype={"RSID": str, "CHR": str, "A1": str, "A2": str})
        missing = [c for c in REQUIRED_ESNP_COLUMNS if c not in table.columns]
        if missing:
            raise VariantError(
                f"{path}: missing columns {missing}; an onek1k.org eSNP table has {', '.join(REQUIRED_ESNP_COLUMNS)}"
                " (among others): check that the file is the right one and is not truncated"
            )
        frames.append(table[table["FDR"] <= max_fdr].assign(cell_type_code=code))
    if not frames:
        raise VariantError("no eSNP tables given: list the lymphoid cell-type codes in the config")
    return pd.concat(frames, ignore_index=True)


def variant_universe(esnps: pd.DataFrame) -> pd.DataFrame:
    """One row per rsID: position (GRCh37) and alleles, the cell types and genes it leads in, its
    strongest |rho| and smallest p-value."""
    esnps = esnps.assign(abs_rho=esnps["SPEARMANS_RHO"].abs())
    grouped = esnps.groupby("RSID", sort=False)
    universe = pd.DataFrame(
        {
            "chrom_grch37": grouped["CHR"].first(),
            "pos_grch37": grouped["POS"].first(),
            "a1": grouped["A1"].first(),
            "a2": grouped["A2"].first(),
            "cell_types": grouped["cell_type_code"].agg(lambda s: ",".join(sorted(set(s)))),
            "genes": grouped["GENE_ID"].agg(lambda s: ",".join(sorted(set(s)))),
            "max_abs_rho": grouped["abs_rho"].max(),
            "min_p_value": grouped["P_VALUE"].min(),
        }
    )
    return universe.rename_axis("rsid").reset_index()


def match_to_vcf(universe: pd.DataFrame, vcf: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep the universe's variants found in the VCF (by rsID) with the same alleles; returns them with
    the VCF's GRCh38 position and REF/ALT, and the counts of each step for the log and the report."""
    from mixmil_workflow.genetics.vcf import vcf_sites

    sites = vcf_sites(vcf, universe["rsid"]).drop_duplicates("rsid", keep=False)  # multi-allelic: ambiguous
    matched = universe.merge(sites, on="rsid", how="inner")
    same_alleles = [
        {a1, a2} == {ref, alt}
        for a1, a2, ref, alt in zip(matched["a1"], matched["a2"], matched["ref"], matched["alt"], strict=True)
    ]
    kept = matched[same_alleles].reset_index(drop=True)
    counts = {
        "universe": len(universe),
        "in_vcf": len(matched),
        "allele_mismatch": len(matched) - len(kept),
        "kept": len(kept),
    }
    return kept, counts


def universe_steps(n_esnps: int, n_tables: int, max_fdr: float, counts: Mapping[str, int]) -> pd.DataFrame:
    """The variant count at each step of building the universe, for the report."""
    return pd.DataFrame(
        {
            "step": [
                f"lead eSNPs (FDR <= {max_fdr}) in {n_tables} cell types",
                "unique rsIDs (the variant universe; the paper has 16,718)",
                "found in the VCF by rsID",
                "alleles differ from the VCF (dropped)",
                "kept",
            ],
            "variants": [n_esnps, counts["universe"], counts["in_vcf"], counts["allele_mismatch"], counts["kept"]],
        }
    )
