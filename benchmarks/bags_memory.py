"""Peak memory of building bags from an AnnData + bag table (bring your own bags) and of one training
fold, against the size of the instance matrix.

Every measurement is a fresh Python process's peak RSS minus that of a process that only imports the
same modules, divided by the float32 instance matrix size: 1.0 means one matrix in memory. Building
reads the matrix once (anndata) and, when the instances are not grouped by bag, gathers it into bag
order once (a second matrix); the training fold loads the prepared matrix and copies the training and
held-out bags once.

    python benchmarks/bags_memory.py                      # writes benchmarks/results/bags_memory.*
    python benchmarks/bags_memory.py --instances 100000 --out /tmp/bags
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd
from harness import run_snippet

IMPORTS = """
import json, resource
import anndata, torch, pandas
import mixmil_workflow.own_bags.input, mixmil_workflow.own_bags.crossval, mixmil_workflow.models.mixmil
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BUILD = """
import json, resource, sys
from mixmil_workflow.own_bags.input import load_bag_dataset
from mixmil_workflow.own_bags.protocol import assign_folds
from mixmil_workflow.own_bags.study import save_prepared
ds = load_bag_dataset(sys.argv[1], sys.argv[2], {"y": {"likelihood": "bernoulli"}})
folds = assign_folds(ds.table, {"kind": "kfold", "n_folds": 5, "n_repeats": 1}, [0])
save_prepared(ds, folds, sys.argv[3], sys.argv[4], sys.argv[5])
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

FIT = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from mixmil_workflow.own_bags.crossval import FitSettings, fit_folds
from mixmil_workflow.own_bags.input import LabelSpec
from mixmil_workflow.own_bags.preprocess import Preprocessing
from mixmil_workflow.own_bags.study import load_prepared
bags, table = load_prepared(sys.argv[1], sys.argv[2], "bag")
spec = {"type": "mixmil", "n_epochs": 2, "batch_size": 64, "progress": False}
# the workflow's default for raw X: constant features dropped, features standardised on the training bags
settings = FitSettings(LabelSpec("y", "bernoulli"), [], Preprocessing(standardize=True), "bag")
fit_folds(spec, bags, table, settings, [(0, 0)], [0], log=lambda message: None)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args) -> float:
    return run_snippet(code, *args)["peak_mb"]


def write_dataset(root: Path, n_instances: int, n_features: int, grouped: bool, seed: int = 0) -> tuple[Path, Path]:
    import anndata

    rng = np.random.default_rng(seed)
    n_bags = max(10, n_instances // 500)
    bag = rng.integers(0, n_bags, n_instances)
    bag[:n_bags] = np.arange(n_bags)  # every bag has an instance
    if grouped:
        bag = np.sort(bag)
    ids = np.array([f"b{b:05d}" for b in range(n_bags)])
    adata = anndata.AnnData(
        X=rng.standard_normal((n_instances, n_features), dtype=np.float32),
        obs=pd.DataFrame({"bag": ids[bag]}, index=[f"i{k}" for k in range(n_instances)]),
    )
    h5ad = root / f"instances_{n_instances}_{'grouped' if grouped else 'shuffled'}.h5ad"
    adata.write_h5ad(h5ad)
    table = root / f"bags_{n_instances}.tsv"
    pd.DataFrame({"bag": ids, "y": rng.integers(0, 2, n_bags)}).to_csv(table, sep="\t", index=False)
    return h5ad, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bags_memory"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    base = run(IMPORTS)
    rows = []
    for n in args.instances:
        matrix_mb = n * args.features * 4 / 2**20
        for grouped in (False, True):
            h5ad, table = write_dataset(args.work, n, args.features, grouped)
            prepared = [args.work / "x.npy", args.work / "bags_prepared.tsv", args.work / "names.tsv.gz"]
            build = run(BUILD, h5ad, table, *prepared)
            fit = run(FIT, prepared[0], prepared[1])
            row = {
                "instances": n,
                "features": args.features,
                "order": "grouped by bag" if grouped else "shuffled",
                "matrix_mb": matrix_mb,
                "build_peak_mb": build,
                "build_matrices": (build - base) / matrix_mb,
                "fit_peak_mb": fit,
                "fit_matrices": (fit - base) / matrix_mb,
            }
            rows.append(row)
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
            h5ad.unlink()
    table = pd.DataFrame(rows)
    (args.out / "bags_memory.json").write_text(
        json.dumps({"machine": platform.platform(), "imports_mb": base, "rows": rows}, indent=2)
    )
    lines = [
        "# Bring-your-own-bags peak memory (benchmarks/bags_memory.py)",
        "",
        f"Machine: {platform.platform()}. Imports alone: {base:.0f} MB. 'matrices' = (peak - imports) / matrix size.",
        "",
        table.round(2).to_markdown(index=False),
        "",
    ]
    (args.out / "bags_memory.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
