"""Jobs and wall time of a small bring-your-own-bags study, one job per fit against one job per model.

A 100-bag dataset (raw features in units spanning hundreds to thousands, as public MIL benchmark data),
one Bernoulli label, 6 models, 10-fold CV repeated 5 times (300 fits): run end to end with
``fits_per_job: fold`` (one process per fit, the workflow's former shape) and ``fits_per_job: all`` (one
process per label and model), in one run of this script so the two share the machine's state. Both must
give identical result rows (each fit's seed comes from its identity, not from its job).

    python benchmarks/own_bags_jobs.py [--cores 2]   # writes benchmarks/results/own_bags_jobs.{json,md}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "mixmil": {"type": "mixmil", "n_epochs": 300, "batch_size": 32},
    "glmm": {"type": "glmm"},
    "abmil": {"type": "abmil", "n_epochs": 50, "batch_size": 16},
    "gated_abmil": {"type": "gated_abmil", "n_epochs": 50, "batch_size": 16},
    "dsmil": {"type": "dsmil", "n_epochs": 50, "batch_size": 16},
    "additive_mil": {"type": "additive_mil", "n_epochs": 50, "batch_size": 16},
}


def write_dataset(root: Path, n_bags: int = 100, n_features: int = 32, seed: int = 0) -> None:
    """Bags of 20-100 instances; positive bags hold a few instances shifted along some features."""
    import anndata

    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 101, n_bags)
    label = (np.arange(n_bags) % 2).astype(int)
    scale = np.exp(rng.uniform(np.log(100), np.log(3000), n_features))
    rows, bag_of = [], []
    for b, size in enumerate(sizes):
        x = rng.standard_normal((size, n_features))
        if label[b]:
            witnesses = rng.choice(size, max(1, size // 10), replace=False)
            x[witnesses, :4] += 1.5
        rows.append(x * scale + 5 * scale)
        bag_of += [f"bag{b:03d}"] * size
    adata = anndata.AnnData(
        X=np.concatenate(rows).astype(np.float32),
        obs=pd.DataFrame({"bag": bag_of}, index=[f"i{k}" for k in range(len(bag_of))]),
    )
    adata.write_h5ad(root / "instances.h5ad")
    pd.DataFrame({"bag": [f"bag{b:03d}" for b in range(n_bags)], "positive": label}).to_csv(
        root / "bags.tsv", sep="\t", index=False
    )


def run(root: Path, fits_per_job: str, cores: int) -> dict:
    workdir = root / fits_per_job
    workdir.mkdir()
    config = {
        "seed": 0,
        "device": "cpu",
        "models": MODELS,
        "datasets": {
            "bench": {
                "instances": str(root / "instances.h5ad"),
                "table": str(root / "bags.tsv"),
                "labels": {"positive": {"likelihood": "bernoulli"}},
                "protocol": {"kind": "kfold", "n_folds": 10, "n_repeats": 5},
                "fits_per_job": fits_per_job,
                "models": list(MODELS),
            }
        },
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake = str(Path(sys.executable).parent / "snakemake")
    command = [snakemake, "--snakefile", str(ROOT / "Snakefile"), "--cores", str(cores), "--configfile", str(path),
               "--directory", str(workdir)]  # fmt: skip
    plan = subprocess.run([*command, "-n"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    counts = dict(
        line.split()[:2]
        for line in plan.splitlines()
        if line.split()[:1] and line.split()[0] in ("fit_dataset", "total")
    )
    start = time.perf_counter()
    subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    seconds = time.perf_counter() - start
    table = workdir / "results/datasets/bench/bench_comparison.tsv"
    return {
        "fits_per_job": fits_per_job,
        "fit_jobs": int(counts["fit_dataset"]),
        "jobs": int(counts["total"]),
        "wall_seconds": round(seconds, 1),
        # the rows, not the provenance lines (whose config digest includes fits_per_job itself)
        "comparison_sha256": hashlib.sha256(
            "".join(line for line in table.read_text().splitlines(True) if not line.startswith("#")).encode()
        ).hexdigest(),
        "auc": pd.read_csv(table, sep="\t", comment="#").set_index("model")["auc"].round(3).to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root)
        rows = [run(root, mode, args.cores) for mode in ("fold", "all")]
    same = rows[0]["comparison_sha256"] == rows[1]["comparison_sha256"]
    record = {"command": f"python benchmarks/own_bags_jobs.py --cores {args.cores}", "machine": platform.platform(),
              "cpus": os.cpu_count(), "python": platform.python_version(), "rows": rows,
              "identical_tables": same, "speedup": round(rows[0]["wall_seconds"] / rows[1]["wall_seconds"], 2),
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "own_bags_jobs"
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# Own bags: one job per fit against one per model ({record['date']})", "",
        f"Command: `{record['command']}`; {record['cpus']} CPUs. 100 bags, 6 models, 10-fold CV x 5 repeats "
        "(300 fits).", "",
        "| fits_per_job | fit jobs | jobs | wall seconds |", "|---|---|---|---|",
    ]  # fmt: skip
    lines += [f"| {r['fits_per_job']} | {r['fit_jobs']} | {r['jobs']} | {r['wall_seconds']} |" for r in rows]
    auc = ", ".join(f"{m} {v}" for m, v in rows[1]["auc"].items())
    lines += ["", f"One job per model is {record['speedup']}x faster; comparison rows byte-identical: {same}.",
              "", f"Held-out AUC (mean over repeats): {auc}"]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not same:
        raise SystemExit("the two groupings gave different comparison tables")


if __name__ == "__main__":
    main()
