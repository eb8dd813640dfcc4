"""Atomic file writes: an output appears complete or not at all (safe under interruption)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
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


def save_tsv_gz(path: str | Path, table: pd.DataFrame, **to_csv) -> None:
    """A gzip-compressed TSV, written atomically, whose bytes depend on the table only: the gzip header
    carries neither a timestamp nor a file name (pandas would write the temporary file's), so identical
    runs give identical files."""
    import gzip

    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
            table.to_csv(fh, sep="\t", index=False, **to_csv)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def save_table(
    path: str | Path | Sequence[str | Path], table: pd.DataFrame, provenance: Mapping[str, Any] | None = None
) -> None:
    """TSV for ``.tsv``, GitHub Markdown for ``.md``, a sortable HTML page for ``.html`` (what the Snakemake
    report shows inline; ``mixmil_workflow.html_tables``); several paths write the table in each format.

    A result table passes its ``provenance`` (the rule's ``params.provenance``): a Markdown table gets it
    as a footer, an HTML page below the table, a TSV as leading ``#`` lines (read it back with
    :func:`read_table`)."""
    from mixmil_workflow.workflow.provenance import provenance_footer, provenance_lines

    if not isinstance(path, str | Path):
        for one in path:
            save_table(one, table, provenance)
        return
    path = Path(path)
    lines = provenance_lines(provenance) if provenance is not None else []
    with atomic_path(path) as tmp:
        if path.suffix == ".html":
            from mixmil_workflow.html_tables import page, table_html

            tmp.write_text(page(path.stem.replace("_", " "), [table_html(table)], lines))
        elif path.suffix == ".md":
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
            from mixmil_workflow.workflow.provenance import science_packages

            # The job's own record of what it ran with (and what tests/workflow/test_envs.py checks envs against).
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


def use_deterministic_gpu_algorithms() -> None:
    """Switch torch to its deterministic algorithms for a job that runs on a GPU.

    On the CPU every op the package uses is deterministic already. On CUDA, ``index_add_`` (the per-bag
    sums of ragged bags, :mod:`mixmil_workflow.models.segment`) accumulates with atomic adds in whatever order the
    threads finish, so two runs of one configuration could differ in the last bits and then drift apart over
    training. In deterministic mode it takes torch's sort-based path, and cuBLAS needs a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``, kept if the user set it; it must be set before the first cuBLAS call,
    which is why this runs when the job picks its device). ``warn_only``: an op with no deterministic CUDA
    implementation writes a warning to the job's log instead of failing the job."""
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    print(
        "GPU determinism: torch deterministic algorithms on (warn only), "
        f"CUBLAS_WORKSPACE_CONFIG={os.environ['CUBLAS_WORKSPACE_CONFIG']}"
    )


def job_device(requested: str) -> str:
    """The device of a workflow job that trains or embeds: :func:`resolve_device`, plus torch's
    deterministic algorithms when that is a GPU, so that the same configuration gives the same numbers on
    a GPU too. Library calls (``MixMIL(device=...)``) leave this process-wide setting to the caller."""
    device = resolve_device(requested)
    if device.startswith("cuda"):
        use_deterministic_gpu_algorithms()
    return device
