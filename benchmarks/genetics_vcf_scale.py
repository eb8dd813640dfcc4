"""Time and peak memory of the genetics preprocessing on VCFs of OneK1K's shape, with the slope per variant.

OneK1K's imputed VCF holds about 5 M variants x 981 donors (12.7 GB BGZF). Writing one that size takes
longer than the steps it measures, so this generates VCFs of the same shape (981 samples, GT:DS calls, 22
chromosomes, BGZF through htslib's bgzip, indexed with bcftools) at a few variant counts, runs each step
as the rules do, and records wall seconds and peak memory (the Python process and, separately, the largest
child: bcftools or PLINK), then fits seconds per million variants to extrapolate to 5 M. What must hold:
memory does not grow with the VCF (nothing holds it in memory), time grows linearly.

Steps: ``variant_universe`` (the sites of 2 % of the variants by ID, bcftools streaming the whole file),
``donor_genotypes`` (PLINK 1.9 VCF -> binary PLINK for all samples), ``donor_dosages`` (allele counts of
those variants for all samples through the index, bcftools -R).

    python benchmarks/genetics_vcf_scale.py [--variants 10000 20000 40000]   # results/genetics_vcf_scale.*
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import run_snippet

ROOT = Path(__file__).resolve().parents[1]
N_SAMPLES = 981
REAL_VARIANTS = 5_000_000
REAL_VCF_GB = 12.7  # OneK1K.noGP.vcf.gz
UNIVERSE_SHARE = 0.02

STEPS = {
    "variant_universe": """
import json, resource, sys, time
from mixmil_workflow.genetics.vcf import vcf_sites
ids = open(sys.argv[2]).read().split()
start = time.perf_counter()
sites = vcf_sites(sys.argv[1], ids)
assert len(sites) == len(ids)
""",
    "donor_genotypes": """
import json, resource, sys, time
from mixmil_workflow.genetics.plink import vcf_to_bed
samples = [f"S{k}" for k in range(int(sys.argv[3]))]
start = time.perf_counter()
vcf_to_bed(sys.argv[1], samples, sys.argv[4] + "/donors", threads=2, memory_mb=2000)
""",
    "donor_dosages": """
import json, resource, sys, time
import pandas as pd
from mixmil_workflow.genetics.vcf import read_dosages
sites = pd.read_csv(sys.argv[2] + ".sites", sep="\\t")
samples = [f"S{k}" for k in range(int(sys.argv[3]))]
start = time.perf_counter()
dosages = read_dosages(sys.argv[1], sites["rsid"], samples, positions=sites[["chrom", "pos"]])
assert dosages.shape == (len(samples), len(sites))
""",
}
MEASURE = """
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def write_vcf(path: Path, n_variants: int, seed: int = 0) -> list[tuple[int, int, str]]:
    """A BGZF VCF of ``n_variants`` x N_SAMPLES streamed through bgzip in chunks; returns (chrom, pos, id)."""
    rng = np.random.default_rng(seed)
    per_chrom = np.diff(np.linspace(0, n_variants, 23).round().astype(int))
    header = ["##fileformat=VCFv4.2", *(f"##contig=<ID={c}>" for c in range(1, 23)),
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Alternate allele dosage">',
              "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                               *(f"S{k}" for k in range(N_SAMPLES))])]  # fmt: skip
    # imputed dosages with three decimals near the called genotype, as Minimac4 writes them
    jitter = rng.uniform(0, 0.2, 50)
    calls = np.array([[f"{gt}:{min(2.0, max(0.0, ds + (d if ds < 1 else -d))):.3f}" for d in jitter]
                      for gt, ds in (("0|0", 0.0), ("0|1", 1.0), ("1|0", 1.0), ("1|1", 2.0))])  # fmt: skip
    sites = []
    with open(path, "wb") as out, subprocess.Popen(["bgzip", "-c"], stdin=subprocess.PIPE, stdout=out) as bgzip:
        bgzip.stdin.write(("\n".join(header) + "\n").encode())
        k = 0
        for chrom, count in enumerate(per_chrom, start=1):
            positions = np.sort(rng.choice(249_990_000, count, replace=False)) + 10_000
            for start in range(0, count, 2000):
                block = positions[start : start + 2000]
                maf = rng.uniform(0.05, 0.5, (len(block), 1))
                haps = (rng.random((len(block), N_SAMPLES, 2)) < maf[:, :, None]).astype(int)
                genotype = calls[haps[:, :, 0] * 2 + haps[:, :, 1], rng.integers(0, 50, haps.shape[:2])]
                lines = []
                for pos, row in zip(block, genotype, strict=True):
                    rsid = f"rs{k}"
                    sites.append((chrom, int(pos), rsid))
                    lines.append(f"{chrom}\t{pos}\t{rsid}\tA\tG\t.\tPASS\t.\tGT:DS\t" + "\t".join(row))
                    k += 1
                bgzip.stdin.write(("\n".join(lines) + "\n").encode())
        bgzip.stdin.close()
    subprocess.run(["bcftools", "index", "--csi", str(path)], check=True)
    return sites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, nargs="+", default=[20_000, 40_000, 80_000])
    parser.add_argument("--write-vcf", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_vcf:
        path, n = Path(args.write_vcf[0]), int(args.write_vcf[1])
        sites = write_vcf(path, n)
        Path(f"{path}.sites").write_text("".join(f"{c}\t{p}\t{r}\n" for c, p, r in sites))
        return
    rows = []
    for n in args.variants:
        with tempfile.TemporaryDirectory() as tmp:
            vcf = Path(tmp) / "genotypes.vcf.gz"
            start = time.perf_counter()
            # in a child process: Linux passes a process's peak RSS on to the processes it forks, so the
            # parent of the measured steps must stay small
            subprocess.run([sys.executable, __file__, "--write-vcf", str(vcf), str(n)], check=True)
            sites = [tuple(line.split("\t")) for line in Path(f"{vcf}.sites").read_text().splitlines()]
            sites = [(int(c), int(p), r) for c, p, r in sites]
            written = time.perf_counter() - start
            rng = np.random.default_rng(1)
            chosen = sorted(rng.choice(len(sites), max(1, int(UNIVERSE_SHARE * n)), replace=False))
            ids = Path(tmp) / "universe.txt"
            ids.write_text("\n".join(sites[k][2] for k in chosen) + "\n")
            (Path(tmp) / "universe.txt.sites").write_text(
                "chrom\tpos\trsid\n" + "".join(f"{sites[k][0]}\t{sites[k][1]}\t{sites[k][2]}\n" for k in chosen)
            )
            size_mb = vcf.stat().st_size / 2**20
            print(f"{n} variants x {N_SAMPLES} samples: {size_mb:.0f} MB BGZF, written in {written:.0f} s", flush=True)
            for step, code in STEPS.items():
                record = run_snippet(code + MEASURE, vcf, ids, N_SAMPLES, tmp)
                rows.append(
                    {"step": step, "variants": n, "vcf_mb": round(size_mb, 1)}
                    | {k: round(v, 2) for k, v in record.items()}
                )
                print(f"  {step}: {record['seconds']:.1f} s, Python {record['python_peak_mb']:.0f} MB, "
                      f"child {record['child_peak_mb']:.0f} MB", flush=True)  # fmt: skip
    slopes = {}
    for step in STEPS:
        points = [(r["variants"], r["seconds"]) for r in rows if r["step"] == step]
        x, y = np.array(points, dtype=float).T
        slope, intercept = np.polyfit(x / 1e6, y, 1)
        at_real = (slope * REAL_VARIANTS / 1e6 + intercept) / 60
        sizes = np.array([r["vcf_mb"] for r in rows if r["step"] == step]) / 1024
        per_gb, gb_intercept = np.polyfit(sizes, y, 1)
        at_real_size = (per_gb * REAL_VCF_GB + gb_intercept) / 60
        slopes[step] = {"seconds_per_million_variants": round(float(slope), 1),
                        "extrapolated_minutes_at_5M": round(float(at_real), 1),
                        "seconds_per_gb": round(float(per_gb), 1),
                        "extrapolated_minutes_at_12_7_gb": round(float(at_real_size), 1)}  # fmt: skip
    command = "python benchmarks/genetics_vcf_scale.py --variants " + " ".join(map(str, args.variants))
    record = {"command": command,
              "machine": platform.platform(), "samples": N_SAMPLES, "rows": rows, "slopes": slopes,
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "genetics_vcf_scale"
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Genetics preprocessing on VCFs of OneK1K's shape ({record['date']})", "",
             f"{N_SAMPLES} samples, GT:DS calls, 22 chromosomes; universe = {UNIVERSE_SHARE:.0%} of the variants. "
             f"Command: `{record['command']}`.", "",
             "| step | variants | VCF (MB) | seconds | Python peak (MB) | largest child peak (MB) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['step']} | {r['variants']} | {r['vcf_mb']} | {r['seconds']} | {r['python_peak_mb']} | "
              f"{r['child_peak_mb']} |" for r in rows]  # fmt: skip
    lines += ["", "Least-squares lines over the variant counts and over the compressed sizes; the real VCF's records",
              "carry more INFO than these, so the line over the size is the closer estimate for it.", "",
              "| step | s per million variants | at 5 M variants (min) | s per GB | at 12.7 GB (min) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for step, v in slopes.items():
        lines.append(f"| {step} | {v['seconds_per_million_variants']} | {v['extrapolated_minutes_at_5M']} | "
                     f"{v['seconds_per_gb']} | {v['extrapolated_minutes_at_12_7_gb']} |")  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
