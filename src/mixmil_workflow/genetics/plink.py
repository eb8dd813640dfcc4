"""PLINK 1.9 steps of the genetics branch: VCF to binary PLINK for the donors with cells, the leading
genetic principal components after QC and LD pruning (the Theis lab's cellink recipe, data_sources.md
section 1.4: ``--geno 0.1 --maf 0.05 --hwe 1e-6``, ``--indep-pairwise 1000 50 0.1``, ``--pca``), and the
LD clumping of the labels.

PLINK itself does the work (a real, widely used binary: Debian ``plink1.9``, bioconda ``plink``); this
module builds its command lines, runs them with their output in the job log, and reads the results.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd


class PlinkError(RuntimeError):
    """PLINK failed or is missing; the message carries the command and the end of PLINK's log."""


def plink_binary() -> str:
    """``plink1.9`` (Debian) or ``plink`` (bioconda, the 1.90 series)."""
    for name in ("plink1.9", "plink"):
        path = shutil.which(name)
        if path:
            return path
    raise PlinkError("PLINK 1.9 not found: install it (apt-get install plink1.9, or conda install -c bioconda plink)")


def plink_memory_mb(job_mem_mb: int) -> int:
    """PLINK's ``--memory`` in a job granted ``job_mem_mb``: most of it, the rest for the Python process."""
    return int(0.75 * job_mem_mb)


def run_plink(args: Sequence[str], out_prefix: str | Path, threads: int = 1, memory_mb: int | None = None) -> None:
    """Run PLINK with ``--out out_prefix`` and the job's threads and memory (PLINK otherwise takes every core
    of the node and half its memory, whatever the scheduler granted); fail with the command and its log."""
    limits = ["--threads", str(threads)] + (["--memory", str(int(memory_mb))] if memory_mb else [])
    command = [plink_binary(), *map(str, args), *limits, "--out", str(out_prefix)]
    result = subprocess.run(command, capture_output=True, text=True)
    print(result.stdout, end="")
    if result.returncode != 0:
        log = Path(f"{out_prefix}.log")
        detail = log.read_text()[-3000:] if log.exists() else result.stdout[-3000:] + result.stderr[-3000:]
        raise PlinkError(f"PLINK failed (exit {result.returncode}): {' '.join(command)}\n{detail}")


def vcf_to_bed(
    vcf: str | Path, samples: Iterable[str], out_prefix: str | Path, threads: int = 1, memory_mb: int | None = None
) -> pd.DataFrame:
    """Convert the VCF to binary PLINK for ``samples`` (VCF sample names), keeping REF/ALT order (A1 = ALT)
    so that allele counts are ALT dosages as in the VCF. Returns the ``.fam`` table."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    keep = out_prefix.with_suffix(".keep.txt")
    samples = list(samples)
    # --double-id: FID = IID = the whole VCF sample name (OneK1K_692 has an underscore PLINK would split).
    keep.write_text("".join(f"{s}\t{s}\n" for s in samples))
    run_plink(
        ["--vcf", vcf, "--double-id", "--keep-allele-order", "--vcf-half-call", "missing", "--keep", keep]
        + ["--allow-extra-chr", "--make-bed"],
        out_prefix,
        threads,
        memory_mb,
    )
    fam = pd.read_csv(f"{out_prefix}.fam", sep=r"\s+", header=None, names=["fid", "iid", "pat", "mat", "sex", "pheno"])
    missing = sorted(set(samples) - set(fam["iid"]))
    if missing:
        raise PlinkError(f"{vcf}: {len(missing)} donor(s) not among the VCF samples, e.g. {missing[:3]}")
    return fam


def genetic_pcs(
    bed_prefix: str | Path,
    out_prefix: str | Path,
    n_pcs: int = 4,
    maf: float = 0.05,
    geno: float = 0.1,
    hwe: float = 1e-6,
    prune: tuple[int, int, float] = (1000, 50, 0.1),
    threads: int = 1,
    memory_mb: int | None = None,
) -> pd.DataFrame:
    """QC, LD pruning and PCA; returns one row per sample (index: VCF sample name), columns PC1..PCn."""
    out_prefix = Path(out_prefix)
    qc = ["--bfile", bed_prefix, "--geno", geno, "--maf", maf, "--hwe", hwe, "--keep-allele-order"]
    run_plink([*qc, "--indep-pairwise", *prune], out_prefix.with_name(out_prefix.name + ".prune"), threads, memory_mb)
    pruned = Path(f"{out_prefix}.prune.prune.in")
    n_kept = sum(1 for _ in open(pruned))
    if n_kept < n_pcs + 1:
        raise PlinkError(f"only {n_kept} variants left after QC and LD pruning: too few for {n_pcs} PCs")
    run_plink([*qc, "--extract", pruned, "--pca", n_pcs], out_prefix, threads, memory_mb)
    names = ["fid", "iid", *(f"PC{k + 1}" for k in range(n_pcs))]
    eigenvec = pd.read_csv(f"{out_prefix}.eigenvec", sep=r"\s+", header=None, names=names)
    return eigenvec.drop(columns="fid").set_index("iid").rename_axis("sample")


def clump(
    bed_prefix: str | Path,
    candidates: pd.DataFrame,
    out_prefix: str | Path,
    r2: float,
    kb: int,
    threads: int = 1,
    memory_mb: int | None = None,
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
        threads,
        memory_mb,
    )
    clumped = Path(f"{out_prefix}.clumped")
    if not clumped.exists():  # PLINK writes no file when nothing clumps (all p-values above p1)
        return []
    table = pd.read_csv(clumped, sep=r"\s+")
    return list(table.sort_values("P")["SNP"])
