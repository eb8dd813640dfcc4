"""Resumable, verified downloads of the raw data, driven by a source sheet (``config/sources.tsv``).

The standard library's urllib is used rather than requests (not otherwise needed) because what a
download rule needs is small: HTTP Range requests to resume a ``.part`` file, retries with backoff,
progress in the log, a size/sha256 check, and an atomic rename so a failed or interrupted download
never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SHEET_COLUMNS = ("source", "url", "sha256", "size_bytes", "description")
log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A download that failed after its retries, or whose size or checksum does not match the sheet."""


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    sha256: str | None = None  # None: not published; the first download's sha256 is logged to record
    size_bytes: int | None = None


def read_source_sheet(path: str | Path) -> dict[str, Source]:
    """The sources of a sheet: a TSV with columns source, url, sha256, size_bytes, description
    (sha256 and size_bytes may be empty where the provider publishes none)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"source sheet {path} does not exist; see config/README.md for its columns")
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    missing = [c for c in SHEET_COLUMNS if c not in sheet.columns]
    if missing:
        raise ValueError(f"source sheet {path}: missing columns {missing}; it needs {list(SHEET_COLUMNS)}")
    sources = {}
    for row in sheet.itertuples(index=False):
        if row.source in sources:
            raise ValueError(f"source sheet {path}: source {row.source!r} is listed twice")
        sha = row.sha256.strip().lower() or None
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise ValueError(f"source sheet {path}: sha256 of {row.source!r} is not 64 hex digits: {row.sha256!r}")
        size = row.size_bytes.strip()
        if size and not size.isdigit():
            raise ValueError(f"source sheet {path}: size_bytes of {row.source!r} is not a byte count: {size!r}")
        sources[row.source] = Source(row.source, row.url.strip(), sha, int(size) if size else None)
    return sources


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(
    source: Source,
    dest: str | Path,
    retries: int = 5,
    backoff_seconds: float = 2.0,
    timeout: float = 60.0,
    chunk: int = 1 << 20,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``source`` to ``dest``, resuming a partial ``dest.part`` with HTTP Range requests.

    Each failed attempt (network error, truncated transfer) is retried after ``backoff_seconds * 2**k``;
    the bytes already received are kept. The file is checked against the sheet's size and sha256 and
    only then renamed to ``dest``. A mismatch deletes the partial file and raises :class:`DownloadError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff_seconds * 2 ** (attempt - 1)
            log.warning(
                "download of %s failed (%s); retry %d/%d in %.0f s", source.url, last_error, attempt, retries, wait
            )
            sleep(wait)
        try:
            _fetch(source, part, timeout, chunk)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError, _Truncated) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code in (401, 403, 404, 410):
                raise DownloadError(
                    f"{source.name}: {source.url} answered HTTP {err.code}; the link has moved or expired. "
                    "Update the url in the source sheet (config/sources.tsv)"
                ) from err
            last_error = err
    else:
        raise DownloadError(
            f"{source.name}: {source.url} failed {retries + 1} times (last error: {last_error}); the partial file "
            f"{part} is kept, so rerunning the rule resumes where it stopped"
        )
    _verify(source, part)
    os.replace(part, dest)
    return dest


class _Truncated(Exception):
    pass


def _fetch(source: Source, part: Path, timeout: float, chunk: int) -> None:
    have = part.stat().st_size if part.exists() else 0
    if source.size_bytes is not None and have == source.size_bytes:
        return
    request = urllib.request.Request(source.url, headers={"User-Agent": "mixmil-workflow"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("%s: the server ignores Range requests; starting over", source.name)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else source.size_bytes
        log.info("%s: %s from byte %d of %s", source.name, source.url, have, total if total else "unknown")
        received, next_report = have, 0.0
        with open(part, "ab" if resumed else "wb") as out:
            while block := response.read(chunk):
                out.write(block)
                received += len(block)
                if total and received / total >= next_report:
                    log.info("%s: %.0f %% (%d / %d bytes)", source.name, 100 * received / total, received, total)
                    next_report += 0.1
        if total is not None and received < total:
            raise _Truncated(f"connection closed after {received} of {total} bytes")


def _verify(source: Source, part: Path) -> None:
    size = part.stat().st_size
    if source.size_bytes is not None and size != source.size_bytes:
        part.unlink()
        raise DownloadError(
            f"{source.name}: downloaded {size} bytes but the source sheet expects {source.size_bytes}; the partial "
            "file was deleted. If the provider changed the file, update size_bytes and sha256 in config/sources.tsv"
        )
    digest = sha256_of(part)
    if source.sha256 is None:
        log.warning(
            "%s: no sha256 in the source sheet; this download has sha256 %s (%d bytes): record it in "
            "config/sources.tsv so later downloads are checked",
            source.name,
            digest,
            size,
        )
    elif digest != source.sha256:
        part.unlink()
        raise DownloadError(
            f"{source.name}: sha256 {digest} of the download does not match {source.sha256} in the source sheet; "
            "the file was deleted. Rerun to download again; if the provider changed the file, update the sheet"
        )
