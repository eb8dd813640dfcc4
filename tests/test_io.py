"""Atomic writes: complete or absent, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from mixmil_workflow.io import atomic_path


def test_atomic_path_leaves_nothing_on_failure_and_gives_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and not list(tmp_path.iterdir())
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("whole")
    finally:
        os.umask(old)
    assert target.read_text() == "whole"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # mkstemp's 0600 would hide results from the group


@pytest.fixture
def torch_determinism_restored(monkeypatch):
    """The determinism switch is process-wide: put torch and the environment back after the test."""
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield torch
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_gpu_determinism_switches_torch_and_cublas_but_keeps_a_users_workspace(torch_determinism_restored, monkeypatch):
    from mixmil_workflow.io import use_deterministic_gpu_algorithms

    torch = torch_determinism_restored
    torch.use_deterministic_algorithms(False)
    use_deterministic_gpu_algorithms()
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()  # a missing kernel warns, never fails a job
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    use_deterministic_gpu_algorithms()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_job_device_on_the_cpu_leaves_torch_as_it_was(torch_determinism_restored, monkeypatch, capsys):
    from mixmil_workflow.io import job_device

    torch = torch_determinism_restored
    torch.use_deterministic_algorithms(False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a GPU-declared job on a CPU-only node
    assert job_device("cuda") == "cpu"
    assert job_device("auto") == "cpu"
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert "GPU determinism" not in capsys.readouterr().out


def test_job_device_on_a_gpu_switches_determinism_on(torch_determinism_restored, monkeypatch):
    import mixmil_workflow.io as io

    torch = torch_determinism_restored
    torch.use_deterministic_algorithms(False)
    # No GPU here: stand in for resolve_device's answer on a GPU node, not for torch.
    monkeypatch.setattr(io, "resolve_device", lambda requested: "cuda:0")
    assert io.job_device("auto") == "cuda:0"
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_gzip_tables_are_byte_identical_across_writes(tmp_path):
    """No timestamp, no file name in the gzip header: identical tables give identical bytes."""
    import time

    import pandas as pd

    from mixmil_workflow.io import save_tsv_gz

    table = pd.DataFrame({"obs_name": ["a", "b"], "w": [0.25, 0.75]})
    save_tsv_gz(tmp_path / "one.tsv.gz", table)
    time.sleep(1.1)  # a gzip mtime has one-second resolution
    save_tsv_gz(tmp_path / "two" / "other_name.tsv.gz", table)
    assert (tmp_path / "one.tsv.gz").read_bytes() == (tmp_path / "two" / "other_name.tsv.gz").read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one.tsv.gz", sep="\t"), table)


def test_save_table_writes_one_table_in_the_format_of_each_path(tmp_path):
    import pandas as pd

    from mixmil_workflow.io import read_table, save_table
    from mixmil_workflow.workflow.provenance import config_provenance

    table = pd.DataFrame({"model": ["mixmil", "abmil"], "spearman": [0.83, 0.25]})
    provenance = config_provenance({"models": {"mixmil": {"type": "mixmil"}}}, 3)
    paths = [tmp_path / "t.tsv", tmp_path / "t.md", tmp_path / "t.html"]
    save_table(paths, table, provenance)
    pd.testing.assert_frame_equal(read_table(paths[0]), table)
    assert paths[1].read_text().startswith("| model ") and "0.83" in paths[1].read_text()
    assert "<table" in paths[2].read_text() and "abmil" in paths[2].read_text()
    save_table(tmp_path / "one.md", table, provenance)  # one path as before: the same bytes
    assert (tmp_path / "one.md").read_bytes() == paths[1].read_bytes()
