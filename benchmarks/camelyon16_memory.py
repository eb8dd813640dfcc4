"""Peak memory of the Camelyon16 conversion and of MixMIL training, measured on scaled archives and
extrapolated to the full DSMIL feature set (399 slides, 4,886,434 patches x 512 features).

Each measurement runs in a fresh Python process and reports its peak resident set size (ru_maxrss).

* Conversion: slides of the real average size (12,247 patches) in archives of 2, 4 and 8 slides. The
  conversion streams slide by slide, so its peak should not grow with the number of slides.
* Training (the fit rule: load train/validation/test, fit MixMIL full rank on all 512 features, predict):
  399 slides with the real train/test and tumour/normal counts and every slide scaled by f, so the
  instance matrix and the 64-slide minibatches both scale with f. Peak = a + b f is fitted by least
  squares and evaluated at f = 1.

    python benchmarks/camelyon16_memory.py                 # writes benchmarks/results/camelyon16_memory.*
    python benchmarks/camelyon16_memory.py --out /tmp/mem --fractions 0.005 0.01
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from harness import run_snippet

FULL_PATCHES = 4_886_434
FULL_SLIDES = 399
MEAN_PATCHES = FULL_PATCHES // FULL_SLIDES  # 12,246
SPLIT = {("train", 0): 159, ("train", 1): 111, ("test", 0): 80, ("test", 1): 49}


def write_archive(
    path: Path, n_slides_by_group: dict, patches: int, n_features: int, seed: int, n_texts: int = 16
) -> None:
    """A DSMIL-layout archive whose slides cycle through ``n_texts`` CSV texts of about ``patches`` rows (the
    content hardly matters for memory, and writing every slide's text would dominate the run time; a few
    distinct texts keep the bag means from being constant, which the GLMM start needs)."""
    rng = np.random.default_rng(seed)
    # Sizes spread around the mean (0.5x to 1.5x) as real slides differ in size: equal sizes would take
    # MixMIL's dense fast path, which real Camelyon16 slides never do.
    n = min(n_texts, sum(n_slides_by_group.values()))
    sizes = np.round(patches * np.linspace(0.5, 1.5, n)).astype(int) if n > 1 else [patches]
    texts = [
        pd.DataFrame(np.abs(rng.standard_normal((max(1, size), n_features)))).to_csv(index=False, float_format="%.4f")
        for size in sizes
    ]
    rows = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        k = 0
        for (split, label), count in n_slides_by_group.items():
            for _ in range(count):
                k += 1
                name = f"test_{k:03d}" if split == "test" else f"{'tumor' if label else 'normal'}_{k:03d}"
                folder = "1-tumor" if label else "0-normal"
                archive.writestr(f"Camelyon16/{folder}/{name}.csv", texts[k % len(texts)])
                rows.append((f"datasets/Camelyon16/{folder}/{name}.csv", label))
        listing = pd.DataFrame(rows, columns=["0", "label"]).to_csv(index=False)
        archive.writestr("Camelyon16/Camelyon16.csv", listing)


CONVERT = """
import json, resource, sys
from mixmil_workflow.camelyon16 import convert_to_h5ad
convert_to_h5ad(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = """
import json, resource
import torch, h5py, pandas, sklearn  # what the fit job imports
from mixmil_workflow import MixMIL
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

FIT = """
import json, resource, sys, time
import pandas as pd, torch
torch.set_num_threads(2)
from mixmil_workflow.camelyon16 import assign_splits, convert_to_h5ad, fit_preprocessing, load_split
from mixmil_workflow.camelyon16.study import run_model
h5ad, slides_tsv, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
slides = assign_splits(pd.read_csv(slides_tsv, sep="\\t"), 0.1, seed=0)
pre = fit_preprocessing(h5ad, slides, None)
splits = {s: load_split(h5ad, slides, s, pre) for s in ("train", "validation", "test")}
start = time.perf_counter()
spec = dict(type="mixmil", posterior="full_rank", n_epochs=epochs, batch_size=64, progress=False)
predictions, _ = run_model(spec, splits, seed=0)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "fit_seconds": time.perf_counter() - start,
                  "n_instances": int(slides["n_instances"].sum())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, default=Path("/tmp/camelyon16_memory"))
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.15])
    parser.add_argument("--convert-slides", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    q = 512
    baseline = run_snippet(BASELINE)["peak_mb"]
    print(f"imports alone: {baseline:.0f} MB", flush=True)

    conversion = []
    for n in args.convert_slides:
        archive = args.work / f"convert_{n}.zip"
        groups = {("train", 0): n // 2, ("train", 1): n - n // 2}
        write_archive(archive, groups, MEAN_PATCHES, q, seed=n)
        start = time.perf_counter()
        peak = run_snippet(CONVERT, archive, args.work / f"convert_{n}.h5ad", args.work / f"convert_{n}.tsv")["peak_mb"]
        seconds = time.perf_counter() - start
        conversion.append({"slides": n, "patches": n * MEAN_PATCHES, "peak_mb": peak, "seconds": seconds})
        print(f"conversion, {n} slides of {MEAN_PATCHES} patches: peak {peak:.0f} MB, {seconds:.1f} s", flush=True)
        archive.unlink()

    training = []
    for f in args.fractions:
        patches = max(1, round(MEAN_PATCHES * f))
        archive = args.work / f"fit_{f}.zip"
        write_archive(archive, SPLIT, patches, q, seed=1)
        h5ad, slides_tsv = args.work / f"fit_{f}.h5ad", args.work / f"fit_{f}.tsv"
        run_snippet(CONVERT, archive, h5ad, slides_tsv)
        result = run_snippet(FIT, h5ad, slides_tsv, args.epochs)
        matrix_mb = result["n_instances"] * q * 4 / 2**20
        training.append({"fraction": f, **result, "instance_matrix_mb": matrix_mb})
        print(
            f"training at f={f}: {result['n_instances']} patches ({matrix_mb:.0f} MB as float32), peak "
            f"{result['peak_mb']:.0f} MB, {result['fit_seconds']:.1f} s for {args.epochs} epochs",
            flush=True,
        )
        for path in (archive, h5ad):
            path.unlink()

    fr = np.array([t["fraction"] for t in training])
    peak = np.array([t["peak_mb"] for t in training])
    slope, intercept = np.polyfit(fr, peak, 1)
    full_matrix_mb = FULL_PATCHES * q * 4 / 2**20
    result = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "imports_mb": baseline,
        "conversion": conversion,
        "training": training,
        "training_fit": {"intercept_mb": intercept, "slope_mb_per_fraction": slope},
        "full_scale": {
            "patches": FULL_PATCHES,
            "instance_matrix_mb": full_matrix_mb,
            "training_peak_mb_estimate": intercept + slope,
            "training_peak_over_matrix": (intercept + slope) / full_matrix_mb,
            "conversion_peak_mb_estimate": max(c["peak_mb"] for c in conversion),
        },
    }
    (args.out / "camelyon16_memory.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Camelyon16 peak memory (benchmarks/camelyon16_memory.py)",
        "",
        f"Machine: {result['machine']}, Python {result['python']}; every number is one process's peak RSS.",
        f"Imports alone (torch, h5py, pandas, the package): {baseline:.0f} MB.",
        "",
        "## Conversion (slides of the real mean size, 12,246 patches x 512)",
        "",
        "| slides | patches | peak MB | seconds |",
        "|---:|---:|---:|---:|",
        *[f"| {c['slides']} | {c['patches']:,} | {c['peak_mb']:.0f} | {c['seconds']:.1f} |" for c in conversion],
        "",
        "## MixMIL training (fit rule: load all splits, full rank on 512 features, batch 64, predict)",
        "",
        "| fraction f | patches | instance matrix MB | peak MB | fit s |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {t['fraction']} | {t['n_instances']:,} | {t['instance_matrix_mb']:.0f} | {t['peak_mb']:.0f} | "
            f"{t['fit_seconds']:.1f} |"
            for t in training
        ],
        "",
        f"Least-squares fit: peak = {intercept:.0f} MB + {slope:.0f} MB x f.",
        "",
        "## Full Camelyon16 (f = 1: 4,886,434 patches x 512)",
        "",
        f"- instance matrix (float32): {full_matrix_mb:,.0f} MB",
        f"- MixMIL training peak, extrapolated: {intercept + slope:,.0f} MB "
        f"({(intercept + slope) / full_matrix_mb:.2f} x the instance matrix)",
        f"- conversion peak: {max(c['peak_mb'] for c in conversion):.0f} MB (independent of the slide count)",
        "",
    ]
    (args.out / "camelyon16_memory.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
