"""Atomic file writes: an output appears complete or not at all (safe under interruption)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def save_table(path: str | Path, table: pd.DataFrame) -> None:
    """TSV for ``.tsv``, GitHub Markdown for ``.md``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".md":
            tmp.write_text(table.to_markdown(index=False) + "\n")
        else:
            table.to_csv(tmp, sep="\t", index=False)


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
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            log.flush()
            raise


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU falls back to the
    CPU with a warning, so GPU-declared rules still run on CPU-only machines."""
    import logging

    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        logging.warning("device 'cuda' requested but no GPU is visible; running on the CPU")
        return "cpu"
    return device
