"""Atomic file writes: an output appears complete or not at all (safe under interruption)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file as 0600; give the result the permissions a plain open() would (umask),
        # so that results on a shared file system are readable by the group as usual.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def save_table(path: str | Path, table: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> None:
    """TSV for ``.tsv``, GitHub Markdown for ``.md``.

    A result table passes its ``provenance`` (the rule's ``params.provenance``): a Markdown table gets it
    as a footer, a TSV as leading ``#`` lines (read it back with :func:`read_table`)."""
    from .provenance import provenance_footer, provenance_lines

    path = Path(path)
    lines = provenance_lines(provenance) if provenance is not None else []
    with atomic_path(path) as tmp:
        if path.suffix == ".md":
            footer = provenance_footer(provenance) if provenance is not None else ""
            tmp.write_text(table.to_markdown(index=False) + "\n" + footer)
        else:
            with open(tmp, "w") as fh:
                fh.writelines(f"# {line}\n" for line in lines)
                table.to_csv(fh, sep="\t", index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a TSV written by :func:`save_table`, skipping its ``#`` provenance lines."""
    return pd.read_csv(path, sep="\t", comment="#")


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Send stdout, stderr and Python warnings of a workflow job to its log file."""
    import logging

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
        logging.captureWarnings(True)
        try:
            yield
            from .provenance import science_packages

            # The job's own record of what it ran with (and what tests/test_envs.py checks envs against).
            print("packages used: " + ", ".join(f"{n}=={v}" for n, v in science_packages().items()))
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            log.flush()
            raise


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU falls back to the
    CPU with a warning, so GPU-declared rules still run on CPU-only machines.

    The decision goes to the job's log with ``CUDA_VISIBLE_DEVICES``: on a cluster that is how a user sees
    whether the scheduler gave the job a GPU and whether torch could use it."""
    import logging
    import os

    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        resolved = "cuda" if n_cuda else "cpu"
    elif device == "cuda" and not n_cuda:
        logging.warning("device 'cuda' requested but no GPU is visible; running on the CPU")
        resolved = "cpu"
    else:
        resolved = device
    print(
        f"device: requested {device!r} -> {resolved} "
        f"(torch sees {n_cuda} CUDA device(s); CUDA_VISIBLE_DEVICES={visible})"
    )
    return resolved
