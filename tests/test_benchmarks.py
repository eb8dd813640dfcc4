"""The benchmark scripts load: every import they make resolves (a script moved or renamed elsewhere would
otherwise surface only when someone runs the benchmark)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(REPO.glob("benchmarks/*.py")) + sorted(REPO.glob("benchmarks/investigations/*/*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO / "benchmarks")))
def test_a_benchmark_script_imports(script, monkeypatch):
    module = _load(script, monkeypatch)
    assert callable(getattr(module, "main", None)) or script.name == "harness.py"


def _load(script: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(script.parent))  # as when run: its own folder first on sys.path
    spec = importlib.util.spec_from_file_location(f"_benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_baselines_speed_benchmark_steps_two_training_processes_in_turns(monkeypatch):
    """Each version's process trains a warm-up epoch and turns of two epochs, and the second of each turn is
    what comes back: ``epochs`` times per version, each the training loop's own timing of one epoch."""
    speed = _load(REPO / "benchmarks" / "baselines_speed.py", monkeypatch)
    seconds = speed.interleaved_epoch_seconds(
        {"reference": REPO / "src", "current": REPO / "src"}, "abmil", 2, 1, REPO / "config" / "paper.yaml"
    )
    assert set(seconds) == {"reference", "current"}
    for times in seconds.values():
        assert len(times) == 2 and all(0 < t < 60 for t in times)


def test_the_baselines_speed_benchmark_reports_a_failing_training_process_with_its_log(monkeypatch, tmp_path):
    speed = _load(REPO / "benchmarks" / "baselines_speed.py", monkeypatch)
    broken = tmp_path / "src"
    (broken / "mixmil_workflow").mkdir(parents=True)
    (broken / "mixmil_workflow" / "__init__.py").write_text("raise ImportError('this source tree is broken')\n")
    with pytest.raises(RuntimeError, match="this source tree is broken"):
        speed.interleaved_epoch_seconds({"reference": broken}, "abmil", 1, 1, REPO / "config" / "paper.yaml")


def test_the_simulation_speed_record_names_the_command_that_made_it(monkeypatch):
    """The recorded command carries the thread count (its default is the machine's core count) and every
    option that differs from its default, so a record at one thread says so; the Markdown comes from the
    JSON alone (``--render``)."""
    speed = _load(REPO / "benchmarks" / "mixmil_simulation_speed.py", monkeypatch)
    settings = {**speed.OPTION_DEFAULTS, "threads": 1, "epochs": 300, "posteriors": ["mean_field"]}
    defaults = {**settings, "epochs": 2000, "posteriors": ["full_rank", "mean_field"]}
    default = speed.command({**defaults, "out": str(speed.DEFAULT_OUT)})
    assert default == "python benchmarks/mixmil_simulation_speed.py --threads 1"
    # A record made in another checkout (its absolute path) names the same command.
    assert default == speed.command({**defaults, "out": "/another/checkout/benchmarks/results/mixmil_simulation_speed"})
    elsewhere = speed.command({**settings, "out": str(REPO / "benchmarks/results/one_thread")})
    assert elsewhere == (
        "python benchmarks/mixmil_simulation_speed.py --threads 1 --epochs 300 --posteriors mean_field"
        " --out benchmarks/results/one_thread"
    )
    recorded = REPO / "benchmarks/results/mixmil_simulation_speed"
    record = json.loads(recorded.with_suffix(".json").read_text())
    assert speed.markdown(record) == recorded.with_suffix(".md").read_text()


DEVICE_IMAGE = REPO / "tests" / "support" / "device_image"
GPU_SESSION_STEPS = ("table1_costs", "simulation_speed", "onek1k_scale", "gpu_determinism", "model_tests")


def _device_image_env(**extra) -> dict:
    """This machine's environment with the lent GPU machine's package list imposed on Python."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEVICE_IMAGE_CARRIED")}
    # this environment's pytest plugins (of packages the image lacks) would load before the image's limits apply
    return {**env, "PYTHONPATH": str(DEVICE_IMAGE), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **extra}


def test_the_device_image_refuses_what_the_lent_machine_lacks():
    """The stand-in for the lent machine's Python is active: anndata (installed here, not there) fails, torch
    and the package from src/ import, and a carried wheel's module is let through."""
    code = (
        "import torch, mixmil_workflow.models.mixmil\n"
        "for name in ('anndata', 'natsort'):\n try:\n  __import__(name)\n except ImportError as e: print(e)"
    )
    refused = "No module named {!r} (not on the lent GPU machine's image)"
    env = _device_image_env()
    env["PYTHONPATH"] += os.pathsep + str(REPO / "src")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [refused.format("anndata"), refused.format("natsort")]
    env["DEVICE_IMAGE_CARRIED"] = "natsort"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [refused.format("anndata")]


def test_the_gpu_session_runs_every_step_on_the_lent_machines_packages(tmp_path):
    """benchmarks/gpu_session.sh at toy sizes on the CPU, with only the lent image's packages: every step
    exits 0 and the one archive that comes back holds each step's log and records (a lent machine returns
    at most 8 files), so a missing module or a broken step shows here, not in device time."""
    env = _device_image_env(
        PYTHON=sys.executable, DEVICE="cpu", SMOKE="1", WHEELS=str(tmp_path / "no_wheels"), OUT=str(tmp_path / "out")
    )
    run = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_session.sh")], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout + run.stderr
    steps = (tmp_path / "out" / "steps.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in steps] == list(GPU_SESSION_STEPS)
    assert all(": exit 0 after" in line for line in steps), steps
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu_session.tar.gz", "steps.txt"]
    with tarfile.open(tmp_path / "out" / "gpu_session.tar.gz") as archive:
        names = {Path(name).name for name in archive.getnames()}
    records = ("table1_costs", "mixmil_simulation_speed_cpu", "onek1k_scale_cpu", "gpu_determinism")
    expected = {
        "machine.txt",
        *(f"{s}.log" for s in GPU_SESSION_STEPS),
        *(f"{r}.{e}" for r in records for e in ("json", "md")),
    }
    assert expected <= names
    assert " passed" in run.stdout  # the model tests' summary line, printed at the end


def test_the_gpu_wheels_are_this_environments_versions(monkeypatch):
    wheels = _load(REPO / "benchmarks" / "gpu_wheels.py", monkeypatch)
    pins = dict(requirement.split("==") for requirement in wheels.requirements())
    assert pins["xgboost-cpu"] == importlib.metadata.version("xgboost")
    assert pins["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert set(pins) == set(wheels.DISTRIBUTIONS.values())
