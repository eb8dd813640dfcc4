"""Genetic labels (Appendix D.1): donor dosages of the universe's variants, the GLMM screen (variants
predictable from the donors' mean cell embeddings, out-of-fold Spearman > 0.15, covariates sex, age and
genetic PCs), and LD clumping of the survivors with ``plink1.9 --clump``.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mixmil_workflow.genetics.plink import run_plink
from mixmil_workflow.genetics.samples import vcf_sample_of


def read_dosages(
    vcf: str | Path, rsids: Iterable[str], samples: Sequence[str], positions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """ALT allele counts (0, 1, 2) of ``rsids`` for ``samples`` (rows), from the rounded ``DS`` field
    when present (imputed dosages), else from ``GT``. A missing call is an error naming the variant.

    With ``positions`` (columns ``chrom``, ``pos``) and a ``.csi``/``.tbi`` index next to the VCF, only
    those positions are read (``tabix -R``, Debian package tabix): the real VCF holds millions of records
    x 1,098 samples, hundreds of GB uncompressed. Otherwise the whole file is streamed."""
    wanted = set(rsids)
    if positions is not None and indexed_reading(vcf):
        with tempfile.TemporaryDirectory() as tmp:
            regions = Path(tmp) / "regions.tsv"
            unique = positions[["chrom", "pos"]].astype({"pos": int}).drop_duplicates()
            unique.sort_values(["chrom", "pos"]).to_csv(regions, sep="\t", header=False, index=False)
            command = ["tabix", "-h", "-R", str(regions), str(vcf)]
            with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
                rows, columns = _parse_dosages(proc.stdout, wanted, samples, vcf)
                error = proc.stderr.read()
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {error.strip()[-500:]}")
    else:
        with gzip.open(vcf, "rt") as fh:
            rows, columns = _parse_dosages(fh, wanted, samples, vcf)
    if columns is None:
        raise ValueError(f"{vcf}: no #CHROM header line; is it a VCF?")
    absent = sorted(wanted - set(rows))
    if absent:
        raise ValueError(f"{vcf}: {len(absent)} variant(s) not found, e.g. {absent[:3]}")
    return pd.DataFrame(rows, index=pd.Index(samples, name="sample")).astype(int)


def indexed_reading(vcf: str | Path) -> bool:
    """Whether :func:`read_dosages` can read positions through an index (one exists, tabix is installed)."""
    return vcf_index(vcf) is not None and shutil.which("tabix") is not None


def vcf_index(vcf: str | Path) -> Path | None:
    """The VCF's ``.csi`` or ``.tbi`` index, when there is one."""
    for suffix in (".csi", ".tbi"):
        candidate = Path(f"{vcf}{suffix}")
        if candidate.exists():
            return candidate
    return None


def _parse_dosages(lines: Iterable[str], wanted: set[str], samples: Sequence[str], vcf) -> tuple[dict, dict | None]:
    rows, columns, index = {}, None, []
    for line in lines:
        if line.startswith("##"):
            continue
        if line.startswith("#CHROM"):
            columns = {name: k for k, name in enumerate(line.rstrip("\n").split("\t"))}
            missing = [s for s in samples if s not in columns]
            if missing:
                raise ValueError(f"{vcf}: samples {missing[:3]} are not in the VCF")
            index = [columns[s] for s in samples]
            continue
        # The real VCF has millions of records and ~1,100 samples: split a record fully only when wanted.
        if line.split("\t", 3)[2] not in wanted:
            continue
        fields = line.rstrip("\n").split("\t")
        keys = fields[8].split(":")
        ds = keys.index("DS") if "DS" in keys else None
        gt = keys.index("GT") if "GT" in keys else None
        values = []
        for j, k in enumerate(index):
            call = fields[k].split(":")
            if ds is not None and ds < len(call) and call[ds] not in (".", ""):
                values.append(float(call[ds]))
                continue
            alleles = call[gt].replace("|", "/").split("/") if gt is not None and gt < len(call) else ["."]
            if "." in alleles:
                raise ValueError(f"{vcf}: missing genotype for {fields[2]} in sample {samples[j]}")
            values.append(float(sum(int(a) > 0 for a in alleles)))
        rows[fields[2]] = np.clip(np.round(values), 0, 2)
    return rows, columns


def donor_table(obs: pd.DataFrame, pcs: pd.DataFrame) -> pd.DataFrame:
    """One row per donor (index donor_id): VCF sample, sex (1 = male), age and the genetic PCs."""
    from mixmil_workflow.genetics.cells import donor_covariates

    donors = donor_covariates(obs)
    donors.insert(0, "sample", [vcf_sample_of(d) for d in donors.index])
    missing = sorted(set(donors["sample"]) - set(pcs.index))
    if missing:
        raise ValueError(f"genetic PCs lack {len(missing)} donor sample(s), e.g. {missing[:3]}")
    return donors.join(pcs, on="sample")


def donor_mean_embeddings(embedding: np.ndarray, donor_of_cell: Sequence[str], donors: Sequence[str]) -> np.ndarray:
    """Mean embedding per donor, rows in the order of ``donors``."""
    frame = pd.DataFrame(np.asarray(embedding, dtype=np.float64)).groupby(np.asarray(donor_of_cell)).mean()
    return frame.loc[list(donors)].to_numpy()


def glmm_screen(
    means: np.ndarray,
    dosages: pd.DataFrame,
    covariates: np.ndarray,
    n_folds: int,
    seed: int,
    first: int = 0,
) -> pd.DataFrame:
    """Per variant: out-of-fold Spearman (and its p-value) of a binomial(2) GLMM on the donors' mean
    embeddings with the covariates as fixed effects, 5-fold stacked as in the paper's evaluation.
    ``first``: the universe index of the first column (a chunk's offset), so that each variant's seed,
    and hence the result, does not depend on how the universe is chunked."""
    from mixmil_workflow.models.glmm import GLMM
    from mixmil_workflow.own_bags.input import stacked_folds

    folds = stacked_folds(len(means), n_folds, seed)
    rows = []
    for k, rsid in enumerate(dosages.columns):
        y = dosages[rsid].to_numpy(dtype=np.float32)[:, None]
        prediction = np.empty(len(y))
        for fold in range(n_folds):
            test = folds == fold
            model = GLMM("binomial", n_trials=2, seed=seed + first + k).fit(means[~test], y[~test], covariates[~test])
            prediction[test] = model.linear_predictor(means[test], covariates[test])[:, 0]
        rho, p_value = spearmanr(prediction, y[:, 0])
        rows.append((rsid, float(rho) if np.isfinite(rho) else 0.0, float(p_value) if np.isfinite(p_value) else 1.0))
    return pd.DataFrame(rows, columns=["rsid", "spearman", "p_value"])


def screen_chunk_columns(n_variants: int, chunk: int, n_chunks: int) -> tuple[int, int]:
    """[first, stop) of the variants in ``chunk`` of ``n_chunks`` contiguous, near-equal blocks (empty
    when there are more chunks than variants)."""
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{n_chunks - 1}")
    bounds = np.linspace(0, n_variants, n_chunks + 1).round().astype(int)
    return int(bounds[chunk]), int(bounds[chunk + 1])


def clump(
    bed_prefix: str | Path,
    candidates: pd.DataFrame,
    out_prefix: str | Path,
    r2: float,
    kb: int,
) -> list[str]:
    """LD clumping of ``candidates`` (``rsid``, ``p_value``) with PLINK 1.9: every candidate may lead a
    clump (``--clump-p1 1``), variants within ``kb`` with r^2 above ``r2`` join the clump of a stronger
    one. Returns the index variants (strongest first)."""
    if candidates.empty:
        return []
    out_prefix = Path(out_prefix)
    assoc = out_prefix.with_suffix(".assoc")
    candidates.rename(columns={"rsid": "SNP", "p_value": "P"})[["SNP", "P"]].to_csv(assoc, sep="\t", index=False)
    run_plink(
        ["--bfile", bed_prefix, "--clump", assoc, "--clump-p1", 1, "--clump-p2", 1]
        + ["--clump-r2", r2, "--clump-kb", kb, "--keep-allele-order"],
        out_prefix,
    )
    clumped = Path(f"{out_prefix}.clumped")
    if not clumped.exists():  # PLINK writes no file when nothing clumps (all p-values above p1)
        return []
    table = pd.read_csv(clumped, sep=r"\s+")
    return list(table.sort_values("P")["SNP"])


def label_steps(n_universe: int, n_screened: int, n_labels: int, min_spearman: float) -> pd.DataFrame:
    """Variant counts from the universe to the labels, next to the paper's (Appendix D.1)."""
    return pd.DataFrame(
        {
            "step": ["variant universe", f"GLMM screen: Spearman > {min_spearman}", "LD clumping"],
            "variants": [n_universe, n_screened, n_labels],
            "paper": ["16,718", "", "28"],
        }
    )
