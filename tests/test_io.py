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
