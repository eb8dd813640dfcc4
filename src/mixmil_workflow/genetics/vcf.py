"""Reading the genotype VCF through bcftools: the sites and the allele counts of chosen variants.

bcftools (htslib, the field's VCF/BCF toolkit: Debian ``bcftools``, bioconda ``bcftools``) streams the
records in C, selects them by ID list (``-i 'ID=@file'``), by position through the ``.csi``/``.tbi`` index
(``-R``) and by sample (``-s``), and prints only the fields asked for; Python sees the selected variants'
lines alone, never the whole file. It is chosen over PLINK here because PLINK's VCF import rewrites the
whole file into its own format before any selection, and over cyvcf2 because it needs no Python package
compiled against htslib in each environment (the same binary serves every env and the CI machine).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


class VcfError(ValueError):
    """A VCF that cannot be read as asked; the message names the file and the fix."""


def bcftools_binary() -> str:
    path = shutil.which("bcftools")
    if path is None:
        raise VcfError(
            "bcftools not found: install it (apt-get install bcftools, or conda install -c bioconda bcftools)"
        )
    return path


def vcf_index(vcf: str | Path) -> Path | None:
    """The VCF's ``.csi`` or ``.tbi`` index, when there is one."""
    for suffix in (".csi", ".tbi"):
        candidate = Path(f"{vcf}{suffix}")
        if candidate.exists():
            return candidate
    return None


def _query(vcf: str | Path, fmt: str, ids: Iterable[str], extra: Sequence[str] = ()) -> Iterable[str]:
    """Lines of ``bcftools query -f fmt`` for the records whose ID is in ``ids``."""
    with tempfile.TemporaryDirectory() as tmp:
        id_file = Path(tmp) / "ids.txt"
        id_file.write_text("".join(f"{i}\n" for i in dict.fromkeys(ids)))
        command = [bcftools_binary(), "query", "-i", f"ID=@{id_file}", *extra, "-f", fmt, str(vcf)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            yield from proc.stdout
            error = proc.stderr.read()
        if proc.returncode != 0:
            raise VcfError(f"{vcf}: {' '.join(command)} failed ({proc.returncode}): {error.strip()[-800:]}")


def vcf_sites(vcf: str | Path, rsids: Iterable[str]) -> pd.DataFrame:
    """CHROM, POS, ID, REF, ALT of the records whose ID is in ``rsids``."""
    rows = [line.rstrip("\n").split("\t") for line in _query(vcf, r"%CHROM\t%POS\t%ID\t%REF\t%ALT\n", rsids)]
    frame = pd.DataFrame(rows, columns=["chrom", "pos", "rsid", "ref", "alt"])
    return frame.astype({"pos": int})


def vcf_samples(vcf: str | Path) -> list[str]:
    out = subprocess.run([bcftools_binary(), "query", "-l", str(vcf)], capture_output=True, text=True)
    if out.returncode != 0:
        raise VcfError(f"{vcf} cannot be read by bcftools: {out.stderr.strip()[-500:]}")
    return out.stdout.split()


def read_dosages(
    vcf: str | Path, rsids: Iterable[str], samples: Sequence[str], positions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """ALT allele counts (0, 1, 2) of ``rsids`` for ``samples`` (rows), from the rounded ``DS`` field when
    present (imputed dosages), else from ``GT``. A missing call is an error naming the variant and sample.

    With ``positions`` (columns ``chrom``, ``pos``) and an index next to the VCF, only those positions are
    read (``bcftools -R``); otherwise bcftools streams the file, selecting the records by ID."""
    wanted = list(dict.fromkeys(rsids))
    samples = list(samples)
    missing = sorted(set(samples) - set(vcf_samples(vcf)))
    if missing:
        raise VcfError(f"{vcf}: samples {missing[:3]} are not in the VCF")
    with tempfile.TemporaryDirectory() as tmp:
        sample_file = Path(tmp) / "samples.txt"
        sample_file.write_text("".join(f"{s}\n" for s in samples))
        extra = ["-S", str(sample_file)]
        if positions is not None and vcf_index(vcf) is not None:
            regions = Path(tmp) / "regions.tsv"
            unique = positions[["chrom", "pos"]].astype({"pos": int}).drop_duplicates()
            unique.sort_values(["chrom", "pos"]).to_csv(regions, sep="\t", header=False, index=False)
            extra += ["-R", str(regions)]
        # -H names the columns: bcftools prints the samples in the VCF's order, not the order asked for
        lines = iter(_query(vcf, r"%ID[\t%GT;%DS]\n", wanted, ["-H", *extra]))
        header = next(lines, None)
        if header is None:
            raise VcfError(f"{vcf}: none of {len(wanted)} variant(s) found, e.g. {wanted[:3]}")
        columns = [name.split("]", 1)[1].split(":", 1)[0] for name in header.rstrip("\n").split("\t")[1:]]
        rows = {}
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            rows[fields[0]] = _allele_counts(fields[1:], fields[0], columns, vcf)
    absent = [r for r in wanted if r not in rows]
    if absent:
        raise VcfError(f"{vcf}: {len(absent)} variant(s) not found, e.g. {absent[:3]}")
    frame = pd.DataFrame(rows, index=pd.Index(columns, name="sample"))[wanted]
    return frame.loc[samples].astype(int)


def _allele_counts(calls: list[str], rsid: str, columns: list[str], vcf) -> np.ndarray:
    values = np.empty(len(calls))
    for j, call in enumerate(calls):
        gt, _, ds = call.partition(";")
        if ds not in (".", ""):
            values[j] = float(ds)
            continue
        alleles = gt.replace("|", "/").split("/")
        if "." in alleles or not gt:
            raise VcfError(f"{vcf}: missing genotype for {rsid} in sample {columns[j]}")
        values[j] = sum(int(a) > 0 for a in alleles)
    return np.clip(np.round(values), 0, 2)
