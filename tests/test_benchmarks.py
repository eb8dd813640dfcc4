"""The benchmark scripts load: every import they make resolves (a script moved or renamed elsewhere would
otherwise surface only when someone runs the benchmark)."""

from __future__ import annotations

import importlib.util
import json
import sys
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
