"""Training speed and accuracy of the torch MIL baselines on the paper's default simulation, this checkout
against a reference revision in the same run (issue 37, target 4).

Models: ABMIL, Gated ABMIL, DSMIL, Bayes-MIL and Additive MIL with config/paper.yaml's settings (Table C.2,
batches of 16 bags), on repeat 0 of the default scenario (1,000 training bags of 50 instances x 30
features, 10 outputs, so 10 stacked networks). The reference revision's `src/` is exported with
`git archive` and every measurement runs in its own process with one `src/` or the other on its path.

* speed: in each of `--rounds` rounds, two long-lived processes (one per version) take turns of two
  epochs (A B B A ...), timing the second epoch of each turn, so that the two epochs of a pair see the
  same machine load (this host slows down in bursts lasting seconds; a design with one process per
  version and round let one version's whole round fall into a burst). Each epoch is timed by the
  training loop itself. Speed-up: the median over pairs of the reference's epoch over this checkout's;
  seconds per epoch: the medians. One thread by default, as the workflow trains a model unless its
  config entry sets ``threads`` (``models.registry.threads``); also, on the shared 2-core host the second
  core comes and goes within seconds, and a 2-thread epoch then runs no faster than a 1-thread one
  (Additive MIL: 0.25 s at 2 threads, 0.40 s at 1, and 0.43 s at 2 while the second core is taken), so
  2-thread ratios move by about 0.3 between runs while 1-thread ones hold to a few hundredths;
* accuracy (`--full`): one fit per version at the configured epochs: test Spearman with the true bag
  effect and instance-retrieval AUC (mean ± s.e. over the outputs); how far this checkout's test bag
  scores are from the reference's (rank correlation per output, mean; largest absolute difference), next
  to how far the reference's own scores move at another thread count (a change of float rounding only:
  training amplifies it).

    python benchmarks/baselines_speed.py --reference 663a987 --full --rounds 3  # benchmarks/results/baselines_speed.*
    python benchmarks/baselines_speed.py --reference 663a987 --full --threads 2 --rounds 5 \
        --out benchmarks/results/baselines_speed_2threads
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

# What both kinds of process start with: argv = src dir, model, threads, config, then their own. The
# simulated data, the model's spec and its seed, as the study would have them.
PRELUDE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, torch, yaml
torch.set_num_threads(int(sys.argv[3]))
from mixmil_workflow.studies.simulation import derive_seed, simulate_default
config = yaml.safe_load(open(sys.argv[4]))
name = sys.argv[2]
spec = {**config["models"][name], "progress": False}
seed = derive_seed(config["seed"], "baselines_speed", name)
data = simulate_default(config, "0")
"""

# A timing process (argv 5: epochs). The training loop's epoch iterator is swapped for a gate: before each
# epoch the process says "@@ready" and waits for "go" on stdin, outside the epoch's own timer (train_epochs
# times from after the iterator hands over the epoch). The last line is "@@result" and the epoch times.
WORKER = (
    PRELUDE
    + r"""
import mixmil_workflow.models.training as training
from mixmil_workflow.models.registry import build


class Gate:
    def __init__(self, iterable, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        for item in self.iterable:
            print("@@ready", flush=True)
            if sys.stdin.readline().strip() != "go":
                sys.exit("the controller stopped sending 'go'")
            yield item

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


training.tqdm = Gate
model = build({**spec, "n_epochs": int(sys.argv[5])}, seed)
model.fit(data.bags("train"), data.y_train)
print("@@result " + json.dumps(model.epoch_seconds.tolist()), flush=True)
"""
)


class TimingProcess:
    """One version's long-lived training process, stepped one epoch at a time."""

    def __init__(self, src: Path, name: str, epochs: int, threads: int, config: Path, log):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(src), name, str(threads), str(config), str(epochs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        self.result: list[float] | None = None

    def wait(self) -> None:
        """Until the process is at its next gate (the first: data simulated, network built) or done."""
        for line in self.proc.stdout:
            if line.startswith("@@ready"):
                return
            if line.startswith("@@result "):
                self.result = json.loads(line.split(" ", 1)[1])
                self.proc.wait()
                return
        raise RuntimeError(f"a timing process ended with code {self.proc.wait()} before its result")

    def epoch(self) -> None:
        """Let the process train one epoch and wait until it is at the next gate (or done)."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.wait()


def interleaved_epoch_seconds(sources: dict[str, Path], name: str, epochs: int, threads: int, config: Path
                              ) -> dict[str, list[float]]:  # fmt: skip
    """Both versions' times of ``epochs`` epochs from two processes taking turns.

    A turn is two epochs and only the second is kept: the first epoch after the other process ran is
    10-25 % slower (measured with one version against itself: caches and torch's worker threads come back
    cold), and a fit runs its epochs back to back. Each process also trains a first, warm-up epoch."""
    with tempfile.TemporaryFile("w+") as log:
        procs = {v: TimingProcess(src, name, 1 + 2 * epochs, threads, config, log) for v, src in sources.items()}
        try:
            for proc in procs.values():
                proc.wait()
                proc.epoch()  # the warm-up
            for turn in range(epochs):
                for version in list(procs) if turn % 2 == 0 else reversed(list(procs)):
                    procs[version].epoch()
                    procs[version].epoch()
        except RuntimeError as error:
            log.seek(0)
            raise RuntimeError(f"{error}:\n{log.read()[-3000:]}") from None
        finally:
            for proc in procs.values():
                if proc.proc.poll() is None:
                    proc.proc.kill()
    return {v: proc.result[2::2] for v, proc in procs.items()}


# One accuracy fit in a fresh process (argv 5: the file for its test bag scores).
SNIPPET = (
    PRELUDE
    + r"""
from mixmil_workflow.studies.simulation import evaluate, run_model
result = run_model(spec, data, seed)
np.save(sys.argv[5], result["bag_score"])
table = evaluate(data, result)
out = {"train_seconds": float(result["train_seconds"])}
for metric in ("spearman", "instance_auc"):
    values = table[metric].to_numpy()
    out[metric], out[metric + "_se"] = float(values.mean()), float(values.std() / np.sqrt(len(values)))
print(json.dumps(out))
"""
)


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
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per version and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: see the docstring)")
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
            for _ in range(args.rounds):
                for version, times in interleaved_epoch_seconds(
                    versions, name, args.epochs, args.threads, config_path
                ).items():
                    seconds[version].extend(times)
            row = {"model": name}
            for version in versions:
                row[f"{version}_epoch_s"] = float(np.median(seconds[version]))
            pair_ratios = np.asarray(seconds["reference"]) / np.asarray(seconds["current"])
            row["speedup"] = float(np.median(pair_ratios))
            # How steady the pairs were: the middle half of their ratios.
            row["speedup_quartiles"] = [float(q) for q in np.quantile(pair_ratios, [0.25, 0.75])]
            # This host's speed changes by up to 1.7x within seconds (a busy neighbour on the physical core,
            # by the look of it: no steal time shows), and the two versions do not slow alike, so the paired
            # ratio moves with the host's state. The ratio of each version's fastest epochs (10th
            # percentiles) is the undisturbed machine's.
            fastest = {version: float(np.quantile(seconds[version], 0.1)) for version in versions}
            row["speedup_fastest"] = fastest["reference"] / fastest["current"]
            row.update({f"{version}_epoch_seconds": seconds[version] for version in versions})
            if args.full:
                # Both versions at --threads, and the reference at another thread count: how far the
                # reference's own numbers move when only the float rounding of its kernels changes.
                other = 1 if args.threads != 1 else 2
                fits = {"reference": ("reference", args.threads), "current": ("current", args.threads),
                        "reference_other_threads": ("reference", other)}  # fmt: skip
                scores = {}
                for key, (version, threads) in fits.items():
                    path = Path(tmp) / f"{name}_{key}.npy"
                    out = run_snippet(SNIPPET, versions[version], name, threads, config_path, path)
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
        "design": "interleaved epochs",
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
    timing = (
        f"In each of {record['rounds']} rounds, one process per version, the two taking turns of two epochs and "
        f"timing the second; {record['epochs_per_round']} timed epochs per process. Speed-up: median over the "
        "adjacent pairs of the reference's epoch over the current one's (in brackets: the middle half of those "
        "ratios); seconds: medians. The fastest epochs: the ratio of the two versions' 10th percentiles of epoch "
        "time (this host's speed changes by up to 1.7x within seconds, and the versions do not slow alike)."
    )
    threads = record["machine"]["torch_threads"]
    lines = [
        f"# Torch MIL baselines: this checkout against {record['reference']} ({record['date']})",
        "",
        f"Machine: {record['machine']['cpu']}{f' (torch CPU kernels {kernels})' if kernels else ''}, "
        f"{record['machine']['cores']} cores, {threads} torch thread{'s' * (threads != 1)}. "
        "Default simulation scenario (repeat 0, 10 outputs), "
        f"config/paper.yaml's settings. Current: {record['current']}. {timing} Command: `{record['command']}`",
        "",
    ]
    full = "current_spearman" in record["rows"][0]
    columns = ["model", "s/epoch, reference", "s/epoch, current", "speed-up", "speed-up of the fastest epochs"]
    if full:
        other = record["rows"][0]["other_threads"]
        columns += ["Spearman, reference", "Spearman, current", "instance AUC, reference", "instance AUC, current",
                    "test scores, current vs reference: rank correlation (largest difference)",
                    f"the same for the reference at {other} thread(s)"]  # fmt: skip
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in record["rows"]:
        cells = [row["model"], f"{row['reference_epoch_s']:.3f}", f"{row['current_epoch_s']:.3f}"]
        cells.append("{:.2f}x ({:.2f}-{:.2f})".format(row["speedup"], *row["speedup_quartiles"]))
        cells.append(f"{row['speedup_fastest']:.2f}x")
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
