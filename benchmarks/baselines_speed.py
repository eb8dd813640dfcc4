"""Training speed and accuracy of the torch MIL baselines on the paper's default simulation, this checkout
against a reference revision in the same run (issue 37, target 4).

Models: ABMIL, Gated ABMIL, DSMIL, Bayes-MIL and Additive MIL with config/paper.yaml's settings (Table C.2,
batches of 16 bags), on repeat 0 of the default scenario (1,000 training bags of 50 instances x 30
features, 10 outputs, so 10 stacked networks). The reference revision's `src/` is exported with
`git archive` and every measurement runs in a fresh process with one `src/` or the other on its path;
the two versions alternate round by round, so both see the same machine load.

* speed: median seconds per training epoch over `--epochs` epochs (the first, a warm-up, left out) in
  each of `--rounds` rounds per version; the ratio is the reference's median over this checkout's;
* accuracy (`--full`): one fit per version at the configured epochs: test Spearman with the true bag
  effect and instance-retrieval AUC (mean ± s.e. over the outputs); how far this checkout's test bag
  scores are from the reference's (rank correlation per output, mean; largest absolute difference), next
  to how far the reference's own scores move at another thread count (a change of float rounding only:
  training amplifies it).

    python benchmarks/baselines_speed.py --reference 663a987 --full     # writes benchmarks/results/baselines_speed.*
    python benchmarks/baselines_speed.py --reference HEAD --models abmil --epochs 3 --rounds 1 --out /tmp/b
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from harness import run_snippet, write_record
from mixmil_simulation_speed import cpu_model
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("abmil", "gated_abmil", "dsmil", "bayes_mil", "additive_mil")

# One measurement in a fresh process: argv = src dir, model, epochs (0: the configured ones, with
# predictions and metrics), threads, predictions file.
SNIPPET = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch, yaml
torch.set_num_threads(int(sys.argv[4]))
from mixmil_workflow.models.registry import build
from mixmil_workflow.studies.simulation import derive_seed, evaluate, run_model, simulate_default
config = yaml.safe_load(open(sys.argv[6]))
name, epochs = sys.argv[2], int(sys.argv[3])
spec = {**config["models"][name], "progress": False}
data = simulate_default(config, "0")
seed = derive_seed(config["seed"], "baselines_speed", name)
if epochs:
    model = build({**spec, "n_epochs": epochs}, seed)
    model.fit(data.bags("train"), data.y_train)
    print(json.dumps({"epoch_seconds": model.epoch_seconds.tolist()}))
else:
    result = run_model(spec, data, seed)
    np.save(sys.argv[5], result["bag_score"])
    table = evaluate(data, result)
    out = {"train_seconds": float(result["train_seconds"])}
    for metric in ("spearman", "instance_auc"):
        values = table[metric].to_numpy()
        out[metric], out[metric + "_se"] = float(values.mean()), float(values.std() / np.sqrt(len(values)))
    print(json.dumps(out))
"""


def git(*args: str) -> bytes:
    """A git command's output in this checkout."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout


def export_source(revision: str, into: Path) -> Path:
    """The reference revision's ``src/`` under ``into`` (read from git, the working tree untouched)."""
    with tarfile.open(fileobj=BytesIO(git("archive", revision, "src"))) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="git revision to compare with (e.g. a commit)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timing round (the first not counted)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also fit each model at its configured epochs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "baselines_speed")
    args = parser.parse_args()
    config_path = ROOT / "config" / "paper.yaml"
    reference_sha = git("rev-parse", "--short", args.reference).decode().strip()
    current_sha = git("rev-parse", "--short", "HEAD").decode().strip()
    dirty = git("status", "--porcelain", "src").decode()
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"reference": export_source(args.reference, Path(tmp)), "current": ROOT / "src"}
        rows = []
        for name in args.models:
            seconds = {version: [] for version in versions}
            for round_ in range(args.rounds):
                order = list(versions) if round_ % 2 == 0 else list(reversed(versions))
                for version in order:
                    out = run_snippet(SNIPPET, versions[version], name, args.epochs, args.threads, "-", config_path)
                    seconds[version].extend(out["epoch_seconds"][1:])
            row = {"model": name}
            for version in versions:
                row[f"{version}_epoch_s"] = float(np.median(seconds[version]))
            row["speedup"] = row["reference_epoch_s"] / row["current_epoch_s"]
            if args.full:
                # Both versions at --threads, and the reference at another thread count: how far the
                # reference's own numbers move when only the float rounding of its kernels changes.
                other = 1 if args.threads != 1 else 2
                fits = {"reference": ("reference", args.threads), "current": ("current", args.threads),
                        "reference_other_threads": ("reference", other)}  # fmt: skip
                scores = {}
                for key, (version, threads) in fits.items():
                    path = Path(tmp) / f"{name}_{key}.npy"
                    out = run_snippet(SNIPPET, versions[version], name, 0, threads, path, config_path)
                    scores[key] = np.load(path)
                    row.update({f"{key}_{k}": v for k, v in out.items()})
                row["other_threads"] = other
                for key in ("current", "reference_other_threads"):
                    row[f"{key}_max_score_difference"] = float(np.abs(scores[key] - scores["reference"]).max())
                    row[f"{key}_score_spearman"] = float(
                        np.mean([spearmanr(a, b)[0] for a, b in zip(scores[key].T, scores["reference"].T, strict=True)])
                    )
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(["python benchmarks/baselines_speed.py", *sys.argv[1:]]),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": args.threads,
            "torch_cpu_kernels": torch_cpu_capability(),
        },  # fmt: skip
        "reference": reference_sha,
        "current": current_sha + (" with uncommitted changes under src/" if dirty else ""),
        "epochs_per_round": args.epochs,
        "rounds": args.rounds,
        "rows": rows,
    }
    write_record(args.out, record, markdown)


def torch_cpu_capability() -> str:
    """The instruction set of torch's CPU kernels (and so of their float rounding): records from hosts
    with different ones differ in the last bits, and training amplifies that."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def markdown(record: dict) -> str:
    kernels = record["machine"].get("torch_cpu_kernels")
    lines = [
        f"# Torch MIL baselines: this checkout against {record['reference']} ({record['date']})",
        "",
        f"Machine: {record['machine']['cpu']}{f' (torch CPU kernels {kernels})' if kernels else ''}, "
        f"{record['machine']['cores']} cores, "
        f"{record['machine']['torch_threads']} torch threads. Default simulation scenario (repeat 0, 10 outputs), "
        f"config/paper.yaml's settings. Current: {record['current']}. Seconds per epoch: median over "
        f"{record['rounds']} rounds of {record['epochs_per_round'] - 1} timed epochs per version, the versions "
        f"alternating. Command: `{record['command']}`",
        "",
    ]
    full = "current_spearman" in record["rows"][0]
    columns = ["model", "s/epoch, reference", "s/epoch, current", "speed-up"]
    if full:
        other = record["rows"][0]["other_threads"]
        columns += ["Spearman, reference", "Spearman, current", "instance AUC, reference", "instance AUC, current",
                    "test scores, current vs reference: rank correlation (largest difference)",
                    f"the same for the reference at {other} thread(s)"]  # fmt: skip
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in record["rows"]:
        cells = [row["model"], f"{row['reference_epoch_s']:.3f}", f"{row['current_epoch_s']:.3f}"]
        cells.append(f"{row['speedup']:.2f}x")
        if full:
            for metric in ("spearman", "instance_auc"):
                for version in ("reference", "current"):
                    cells.append(f"{row[f'{version}_{metric}']:.3f} ± {row[f'{version}_{metric}_se']:.3f}")
            for key in ("current", "reference_other_threads"):
                cells.append(f"{row[f'{key}_score_spearman']:.3f} ({row[f'{key}_max_score_difference']:.2g})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
