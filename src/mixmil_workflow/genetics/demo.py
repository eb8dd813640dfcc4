"""Generated OneK1K-like raw data for the offline demo, in the real sources' formats.

Three files, laid out and named as the real downloads (../shared/reference/data_sources.md section 1):

* ``onek1k.h5ad``: the CELLxGENE dataset (schema 7 layout: integer counts in ``X`` as float32, Ensembl
  IDs as ``var`` index with symbols in ``var["feature_name"]``), with the real ``obs`` columns
  (``donor_id`` like ``691_692``, ``pool_number``, CELLxGENE ``cell_type`` labels of the CD4, CD8 and NK
  groups plus other lineages the branch must drop, ``sex``, ``age``, ...).
* ``OneK1K.noGP.vcf.gz``: the imputed genotypes (BGZF VCF, samples ``OneK1K_<n>``, contigs ``1``-``22``,
  ``GT:DS``, ``INFO/TYPED`` on array-typed sites, more samples than expression donors).
* ``esnp/<code>_esnp_table.tsv.gz``: lead cis-eSNPs per cell type with the S3 bucket's upper-case
  columns and GRCh37 positions (the VCF is GRCh38, so the two join by rsID, as with the real files).

Planted biology: each *planted* variant shifts, per allele, the probability that a cell of one lymphoid
group is in a variant-specific expression state (a module of genes up). The donor's dosage therefore
changes the proportion of state cells in its bag, which attention over cells can pick up better than
the mean cell. *Proxy* variants are in LD with a planted one (they are what LD clumping removes), *no_effect*
variants have no effect, the eSNPs of a non-lymphoid cell type must be ignored by the branch, and
*background* variants are genotyped only (for QC, pruning and genetic PCs, as the millions of the real VCF).
``truth.tsv`` records every variant's role (and a planted variant's module genes), ``samples.tsv`` each
VCF sample's simulated ancestry group and whether it has cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mixmil_workflow.genetics.bgzf import write_bgzf
from mixmil_workflow.io import atomic_path, save_tsv_gz

# CELLxGENE cell_type labels of the lymphoid groups (data_sources.md 1.1).
LYMPHOID_CELL_TYPES = {
    "central memory CD4-positive, alpha-beta T cell": "CD4",
    "naive thymus-derived CD4-positive, alpha-beta T cell": "CD4",
    "effector memory CD4-positive, alpha-beta T cell": "CD4",
    "CD4-positive, alpha-beta T cell": "CD4",
    "regulatory T cell": "CD4",
    "CD4-positive, alpha-beta cytotoxic T cell": "CD4",
    "effector memory CD8-positive, alpha-beta T cell": "CD8",
    "naive thymus-derived CD8-positive, alpha-beta T cell": "CD8",
    "central memory CD8-positive, alpha-beta T cell": "CD8",
    "CD8-positive, alpha-beta T cell": "CD8",
    "natural killer cell": "NK",
    "CD16-negative, CD56-bright natural killer cell, human": "NK",
}
OTHER_CELL_TYPES = ("classical monocyte", "naive B cell", "gamma-delta T cell")
# eSNP table codes of the lymphoid cell types (onek1k.org bucket), with their long CELL_TYPE names.
LYMPHOID_ESNP_CODES = {
    "cd4nc": ("CD4", "CD4 Naive/Central memory T cell"),
    "cd4et": ("CD4", "CD4 Effector memory/TEMRA T cell"),
    "cd4sox4": ("CD4", "CD4 SOX4 T cell"),
    "cd8nc": ("CD8", "CD8 Naive/Central memory T cell"),
    "cd8et": ("CD8", "CD8 Effector memory/TEMRA T cell"),
    "cd8s100b": ("CD8", "CD8 S100B T cell"),
    "nk": ("NK", "Natural Killer Cell"),
    "nkr": ("NK", "Natural Killer Recruiting Cell"),
}
OTHER_ESNP_CODES = {"monoc": "Classical Monocyte"}
ESNP_COLUMNS = [
    "CELL_ID",
    "CELL_TYPE",
    "RSID",
    "SNPID",
    "GENE",
    "GENE_ID",
    "CHR",
    "POS",
    "A1",
    "A2",
    "SPEARMANS_RHO",
    "P_VALUE",
    "Q_VALUE",
    "FDR",
    "RSQUARE",
    "GENOTYPED",
    "ROUND",
]
GROUPS = ("CD4", "CD8", "NK")
# Groups whose cell states the planted variants shift: NK cells are about a tenth of the lymphoid cells,
# too few for a state shift to move the donor's mean embedding past the paper's GLMM screen.
PLANTED_GROUPS = ("CD8", "CD4")
# The demo's GRCh37 positions: GRCh38 minus this (the real builds differ by chromosome-specific shifts).
BUILD_SHIFT = 12_345


@dataclass(frozen=True)
class OneK1KDemoSpec:
    n_donors: int = 120
    n_genotyped_only: int = 10  # VCF samples without cells (the real VCF has 1,098 samples, 981 donors)
    n_pools: int = 8
    mean_cells: int = 60
    n_genes: int = 600
    n_planted: int = 4
    n_proxies: int = 2  # per planted variant
    n_null: int = 24
    n_other_celltype: int = 6  # eSNPs of a non-lymphoid cell type only
    n_background: int = 400  # genotyped variants that are no eSNP (QC, LD pruning and genetic PCs need them)
    module_size: int = 15
    state_base: float = 0.15  # probability of the state at the mean dosage
    effect: float = 1.2  # log-odds of the state per allele
    state_log_fold: float = 1.5
    proxy_flip: float = 0.04  # per-haplotype discordance of a proxy with its planted variant

    @classmethod
    def from_config(cls, config: Mapping) -> OneK1KDemoSpec:
        return cls(**dict(config))


def _haplotypes(rng: np.random.Generator, n: int, maf: float | np.ndarray) -> np.ndarray:
    maf = np.broadcast_to(np.asarray(maf, dtype=float), (n,))[:, None]
    return (rng.random((n, 2)) < maf).astype(np.int8)


def _variants(spec: OneK1KDemoSpec, ancestry: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Variant table (GRCh38) and haplotypes (variants, samples, 2). Background variants differ in
    frequency between two ancestry groups (``ancestry`` 0/1 per sample), so genetic PCs find structure."""
    n_samples = len(ancestry)
    rows, haps = [], []
    used_rsids: set[int] = set()

    def rsid() -> str:
        while True:
            number = int(rng.integers(1_000_000, 99_999_999))
            if number not in used_rsids:
                used_rsids.add(number)
                return f"rs{number}"

    def add(role, chrom, pos, hap, maf, lead="", group="", effect=0.0):
        ref, alt = rng.choice(list("ACGT"), 2, replace=False)
        rows.append(
            dict(rsid=rsid(), chrom=chrom, pos=pos, ref=ref, alt=alt, role=role, lead=lead, group=group)
            | dict(maf=maf, effect=effect, typed=bool(rng.random() < 0.3))
        )
        haps.append(hap)

    for k in range(spec.n_planted):
        chrom, pos, maf = int(rng.integers(1, 23)), int(rng.integers(1_000_000, 90_000_000)), rng.uniform(0.2, 0.5)
        lead = _haplotypes(rng, n_samples, maf)
        add("planted", chrom, pos, lead, maf, group=PLANTED_GROUPS[k % len(PLANTED_GROUPS)], effect=spec.effect)
        lead_id = rows[-1]["rsid"]
        for j in range(spec.n_proxies):
            flip = rng.random(lead.shape) < spec.proxy_flip
            add("proxy", chrom, pos + 2_000 * (j + 1), np.where(flip, 1 - lead, lead), maf, lead=lead_id)
    roles = (("no_effect", spec.n_null), ("other_celltype", spec.n_other_celltype), ("background", spec.n_background))
    for role, count in roles:
        for _ in range(count):
            maf = rng.uniform(0.1, 0.5)
            chrom, pos = int(rng.integers(1, 23)), int(rng.integers(1_000_000, 90_000_000))
            shift = rng.normal(0, 0.12) * (ancestry - ancestry.mean()) if role == "background" else 0.0
            add(role, chrom, pos, _haplotypes(rng, n_samples, np.clip(maf + shift, 0.02, 0.98)), maf)
    table = pd.DataFrame(rows)
    order = np.lexsort((table["pos"].to_numpy(), table["chrom"].to_numpy()))
    return table.iloc[order].reset_index(drop=True), np.stack(haps)[order]


def _vcf_text(variants: pd.DataFrame, haps: np.ndarray, samples: list[str]) -> str:
    header = [
        "##fileformat=VCFv4.2",
        "##source=mixmil-workflow OneK1K demo (generated; the real file is Minimac4 output)",
        *(f"##contig=<ID={c}>" for c in range(1, 23)),
        '##INFO=<ID=AF,Number=1,Type=Float,Description="Estimated Alternate Allele Frequency">',
        '##INFO=<ID=MAF,Number=1,Type=Float,Description="Estimated Minor Allele Frequency">',
        '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated Imputation Accuracy (R-square)">',
        '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="Marker was genotyped">',
        '##INFO=<ID=IMPUTED,Number=0,Type=Flag,Description="Marker was imputed">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Estimated Alternate Allele Dosage : [P(0/1)+2*P(1/1)]">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    lines = header
    for row, hap in zip(variants.itertuples(index=False), haps, strict=True):
        af = hap.mean()
        flag = "TYPED" if row.typed else "IMPUTED"
        info = f"AF={af:.5f};MAF={min(af, 1 - af):.5f};R2={1.0 if row.typed else 0.95:.5f};{flag}"
        calls = [f"{a}|{b}:{a + b}.000" for a, b in hap]
        lines.append("\t".join([str(row.chrom), str(row.pos), row.rsid, row.ref, row.alt, ".", "PASS", info, "GT:DS"]))
        lines[-1] += "\t" + "\t".join(calls)
    return "\n".join(lines) + "\n"


def _esnp_tables(variants: pd.DataFrame, genes: pd.DataFrame, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Lead eSNPs per cell-type code. Planted variants lead in their group's codes, each proxy in one
    code of the same group (so the union holds LD pairs for clumping), nulls in one or two random codes,
    the other cell type's variants only in its own table."""
    codes = {code: [] for code in [*LYMPHOID_ESNP_CODES, *OTHER_ESNP_CODES]}
    lead_group = dict(zip(variants["rsid"], variants["group"], strict=True))
    for row in variants.itertuples(index=False):
        if row.role == "planted":
            chosen = [c for c, (g, _) in LYMPHOID_ESNP_CODES.items() if g == row.group][:2]
        elif row.role == "proxy":
            group_codes = [c for c, (g, _) in LYMPHOID_ESNP_CODES.items() if g == lead_group[row.lead]]
            chosen = [group_codes[int(rng.integers(len(group_codes)))]]
        elif row.role == "no_effect":
            chosen = list(rng.choice(list(LYMPHOID_ESNP_CODES), int(rng.integers(1, 3)), replace=False))
        elif row.role == "other_celltype":
            chosen = list(OTHER_ESNP_CODES)
        else:  # background: in the VCF only
            chosen = []
        for code in chosen:
            gene = genes.iloc[int(rng.integers(len(genes)))]
            strong = row.role in ("planted", "proxy")
            rho = float(rng.choice([-1, 1]) * (rng.uniform(0.25, 0.45) if strong else rng.uniform(0.12, 0.25)))
            p_value = float(10 ** -rng.uniform(8, 30) if strong else 10 ** -rng.uniform(5, 9))
            long_name = LYMPHOID_ESNP_CODES[code][1] if code in LYMPHOID_ESNP_CODES else OTHER_ESNP_CODES[code]
            pos37 = row.pos - BUILD_SHIFT
            codes[code].append(
                [code, long_name, row.rsid, f"{row.chrom}:{pos37}", gene["feature_name"], gene.name, row.chrom]
                + [pos37, row.alt, row.ref, round(rho, 4), p_value, p_value * 10, p_value * 20, round(rho**2, 4)]
                + ["TRUE" if row.typed else "FALSE", 1]
            )
    return {code: pd.DataFrame(rows, columns=ESNP_COLUMNS) for code, rows in codes.items()}


def _cells(
    spec: OneK1KDemoSpec,
    donors: pd.DataFrame,
    dosage: pd.DataFrame,
    variants: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, dict[str, str]]:
    """obs, counts (cells, genes), var and each planted variant's state module (Ensembl IDs)."""
    n_genes = spec.n_genes
    var = pd.DataFrame(
        {
            "feature_name": [f"GENE{i:04d}" for i in range(n_genes)],
            "feature_is_filtered": False,
            "feature_biotype": "gene",
        },
        index=pd.Index([f"ENSG{100000 + 7 * i:011d}" for i in range(n_genes)], name=None),
    )
    base = rng.normal(-1.0, 1.2, n_genes)
    type_labels = [*LYMPHOID_CELL_TYPES, *OTHER_CELL_TYPES]
    type_shift = {t: rng.normal(0, 0.8, n_genes) * (rng.random(n_genes) < 0.15) for t in type_labels}
    group_shift = {g: rng.normal(0, 1.0, n_genes) * (rng.random(n_genes) < 0.2) for g in GROUPS}
    type_probs = np.array([4, 4, 1, 0.2, 1, 0.6, 3, 1.5, 0.6, 0.2, 2.5, 0.4, 1.2, 0.8, 0.4])
    type_probs = type_probs / type_probs.sum()
    pool_shift = rng.normal(0, 0.2, (spec.n_pools, n_genes))
    sex_genes = rng.choice(n_genes, 3, replace=False)
    planted = variants[variants["role"] == "planted"]
    modules = {row.rsid: rng.choice(n_genes, spec.module_size, replace=False) for row in planted.itertuples()}

    frames, counts = [], []
    for donor in donors.itertuples(index=False):
        n_cells = max(5, int(rng.poisson(spec.mean_cells)))
        cell_type = rng.choice(type_labels, n_cells, p=type_probs)
        group = np.array([LYMPHOID_CELL_TYPES.get(t, "") for t in cell_type])
        log_mean = base + np.stack([type_shift[t] for t in cell_type]) + pool_shift[donor.pool - 1]
        log_mean += np.stack([group_shift.get(g, np.zeros(n_genes)) for g in group])
        if donor.sex == "female":
            log_mean[:, sex_genes] += 2.0
        for row in planted.itertuples():
            centred = dosage.loc[donor.sample, row.rsid] - 2 * row.maf
            p_state = 1 / (1 + np.exp(-(np.log(spec.state_base / (1 - spec.state_base)) + row.effect * centred)))
            in_state = (group == row.group) & (rng.random(n_cells) < p_state)
            log_mean[np.ix_(in_state, modules[row.rsid])] += spec.state_log_fold
        library = rng.lognormal(np.log(1500), 0.3, n_cells)
        expected = library[:, None] * np.exp(log_mean) / np.exp(log_mean).sum(1, keepdims=True)
        # Gamma-Poisson (negative binomial, dispersion 1/5): single-cell counts are overdispersed.
        x = rng.poisson(expected * rng.gamma(5.0, 1 / 5.0, expected.shape)).astype(np.float32)
        counts.append(x)
        frames.append(
            pd.DataFrame(
                {
                    "orig.ident": f"pool{donor.pool}",
                    "nCount_RNA": x.sum(1),
                    "nFeature_RNA": (x > 0).sum(1),
                    "percent.mt": rng.uniform(0.5, 6.0, n_cells).round(3),
                    "donor_id": donor.donor_id,
                    "pool_number": str(donor.pool),
                    "predicted.celltype.l2": [t.split(",")[0] for t in cell_type],
                    "predicted.celltype.l2.score": rng.uniform(0.6, 1.0, n_cells).round(3),
                    "age": donor.age,
                    "cell_type": cell_type,
                    "sex": donor.sex,
                    "assay": "10x 3' v2",
                    "disease": "normal",
                    "tissue": "blood",
                    "is_primary_data": True,
                    "suspension_type": "cell",
                }
            )
        )
    obs = pd.concat(frames, ignore_index=True)
    x = np.concatenate(counts)
    # The real file is ordered by pool, not by donor: shuffle cells within pools.
    order = np.lexsort((rng.random(len(obs)), obs["pool_number"].astype(int).to_numpy()))
    obs, x = obs.iloc[order].reset_index(drop=True), x[order]
    barcodes = ["".join(rng.choice(list("ACGT"), 16)) for _ in range(len(obs))]
    obs.index = pd.Index([f"{b}-{p}" for b, p in zip(barcodes, obs["pool_number"], strict=True)])
    for column in ("donor_id", "pool_number", "cell_type", "sex", "assay", "disease", "tissue", "orig.ident"):
        obs[column] = obs[column].astype("category")
    obs["observation_joinid"] = [f"demo{i:07d}" for i in range(len(obs))]
    module_genes = {rsid: ",".join(var.index[genes]) for rsid, genes in modules.items()}
    return obs, x, var, module_genes


def write_onek1k_demo(out_dir: str | Path, spec: OneK1KDemoSpec, seed: int) -> dict[str, Path]:
    """Write the three raw sources and ``truth.tsv`` under ``out_dir``; returns their paths."""
    import anndata
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    n_samples = spec.n_donors + spec.n_genotyped_only
    numbers = np.sort(rng.choice(np.arange(2, 1200, 2), n_samples, replace=False))
    samples = [f"OneK1K_{n}" for n in numbers]
    ancestry = (rng.random(n_samples) < 0.3).astype(float)
    variants, haps = _variants(spec, ancestry, rng)
    dosage = pd.DataFrame(haps.sum(2).T, index=samples, columns=variants["rsid"])

    expressed = rng.permutation(n_samples)[: spec.n_donors]
    donors = pd.DataFrame(
        {
            "sample": [samples[i] for i in expressed],
            "donor_id": [f"{numbers[i] - 1}_{numbers[i]}" for i in expressed],
            "pool": rng.integers(1, spec.n_pools + 1, spec.n_donors),
            "sex": rng.choice(["male", "female"], spec.n_donors),
            "age": rng.integers(19, 98, spec.n_donors),
        }
    )
    obs, x, var, module_genes = _cells(spec, donors, dosage, variants, rng)
    adata = anndata.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)
    adata.uns["schema_version"] = "7.1.0"
    adata.uns["title"] = "OneK1K demo (generated by mixmil-workflow; not real data)"

    paths = {
        "samples": out / "samples.tsv",
        "h5ad": out / "onek1k.h5ad",
        "vcf": out / "OneK1K.noGP.vcf.gz",
        "esnp": out / "esnp",
        "truth": out / "truth.tsv",
    }
    with atomic_path(paths["h5ad"]) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    with atomic_path(paths["vcf"]) as tmp:
        write_bgzf(tmp, _vcf_text(variants, haps, samples))
    for code, table in _esnp_tables(variants, var, rng).items():
        save_tsv_gz(paths["esnp"] / f"{code}_esnp_table.tsv.gz", table)
    with atomic_path(paths["samples"]) as tmp:
        has_cells = np.isin(np.arange(n_samples), expressed)
        pd.DataFrame({"sample": samples, "ancestry": ancestry.astype(int), "has_cells": has_cells}).to_csv(
            tmp, sep="\t", index=False
        )
    truth = variants.drop(columns=["ref", "alt"]).rename(columns={"pos": "pos_grch38"})
    truth["module_genes"] = truth["rsid"].map(module_genes).fillna("")
    with atomic_path(paths["truth"]) as tmp:
        truth.to_csv(tmp, sep="\t", index=False)
    return paths
