"""The paper's Table 1 on a GPU: batch training and prediction times and parameter counts of MixMIL and
the MIL baselines, per device, against the paper's V100 numbers.

It runs the workflow's `model_costs` measurement (mixmil_workflow.studies.costs, the models and settings of
config/paper.yaml's `costs` block) on the default simulation scenario (repeat 0, Q = 30, 1,000 training
bags of 50 instances), once per device in one process: the CPU and, where torch sees one, the GPU. The
paper measured on the genetics data (bags of a donor's cells) on a V100, so absolute times differ; the
ratios to MixMIL are what compares ("over 12x faster than ABMIL and over 40x faster than Bayes-MIL").

    python benchmarks/table1_costs.py                       # writes benchmarks/results/table1_costs.*
    python benchmarks/table1_costs.py --devices cpu --threads 2 --out /tmp/t1
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
import yaml
from harness import write_record

from mixmil_workflow.studies.costs import measure_model_costs
from mixmil_workflow.studies.simulation import derive_seed, simulate_default

ROOT = Path(__file__).resolve().parents[1]
# Table 1 of the paper (genetics dataset, V100 32 GB): batch ms, predict ms, likelihood / variational parameters.
PAPER_TABLE1 = {
    "bayes_mil": (5.65, 16.55, 2883, 1890),
    "abmil": (1.72, 0.21, 1922, 0),
    "gated_abmil": (2.02, 0.25, 2852, 0),
    "dsmil": (1.99, 0.39, 992, 0),
    "mixmil": (0.14, 0.04, 67, 1890),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", default=default_devices)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "table1_costs")
    args = parser.parse_args()
    if "cuda" in args.devices and not torch.cuda.is_available():
        raise SystemExit("--devices cuda: torch sees no GPU here")
    torch.set_num_threads(args.threads)

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    costs = config["costs"]
    data = simulate_default(config, "0")
    rows = []
    for device in args.devices:
        for name in costs["models"]:
            row = measure_model_costs(
                name,
                config["models"][name],
                data,
                derive_seed(config["seed"], "costs"),
                device,
                batch_size=costs["batch_size"],
                n_epochs=costs["n_epochs"],
                n_timings=costs["n_timings"],
            )
            rows.append(row)
            print(f"{device} {name}: step {row['batch_ms_mean']:.3f} ms, predict {row['predict_ms_mean']:.3f} ms")
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(["python benchmarks/table1_costs.py", *sys.argv[1:]]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "settings": {**costs, "scenario": config["simulation"]["defaults"], "repeat": "0"},
        "rows": rows,
    }
    write_record(args.out, record, markdown)


def markdown(record: dict) -> str:
    machine = record["machine"]
    settings = record["settings"]
    lines = [
        f"# Table 1 analogue per device ({record['date']})",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['torch_threads']} torch threads), "
        f"GPU {machine['gpu'] or 'none'}, torch {machine['torch']}. Default simulation scenario (repeat 0), "
        f"output 0, {settings['batch_size']} bags per batch, {settings['n_epochs']} epochs (first one a warm-up) "
        f"and {settings['n_timings']} timed predictions of one batch. Command: `{record['command']}`",
        "",
        "Times are mean ± s.e.; 'x MixMIL' is the time over MixMIL's on the same device. Paper: Table 1 "
        "(genetics data, V100).",
        "",
        "| device | model | batch ms | predict ms | batch x MixMIL | predict x MixMIL | lik pars | var pars "
        "| paper batch ms (x MixMIL) | paper predict ms (x MixMIL) | paper lik / var pars |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for device in dict.fromkeys(row["device"] for row in record["rows"]):
        rows = [row for row in record["rows"] if row["device"] == device]
        base = next((row for row in rows if row["model"] == "mixmil"), None)
        for row in rows:
            paper = PAPER_TABLE1.get(row["model"])
            ratio_b = f"{row['batch_ms_mean'] / base['batch_ms_mean']:.1f}" if base else "–"
            ratio_p = f"{row['predict_ms_mean'] / base['predict_ms_mean']:.1f}" if base else "–"
            if paper:
                pb, pp, pl, pv = paper
                paper_cells = (
                    f"{pb} ({pb / PAPER_TABLE1['mixmil'][0]:.1f}) | {pp} ({pp / PAPER_TABLE1['mixmil'][1]:.1f}) "
                    f"| {pl} / {pv or '–'}"
                )
            else:
                paper_cells = "– | – | –"
            lines.append(
                f"| {device} | {row['model']} | {row['batch_ms_mean']:.3f} ± {row['batch_ms_se']:.3f} "
                f"| {row['predict_ms_mean']:.3f} ± {row['predict_ms_se']:.3f} | {ratio_b} | {ratio_p} "
                f"| {row['likelihood_parameters']} | {row['variational_parameters'] or '–'} | {paper_cells} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
