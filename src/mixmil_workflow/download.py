"""Resumable, verified downloads of the raw data, driven by a source sheet (``config/sources.tsv``).

The standard library's urllib is used rather than requests (not otherwise needed) because what a
download rule needs is small: HTTP Range requests to resume a ``.part`` file, retries with backoff,
progress in the log, a size/sha256 check, and an atomic rename so a failed or interrupted download
never leaves a file that looks complete.

A ``.part`` file is bound to what it was started from: its URL and, where the server sends them, the
file's ETag / Last-Modified, kept beside it in ``<file>.part.json``. A ``.part`` of another URL, or of a
file the server has changed since (detected by ``If-Range`` and by the validators of the answer), is
started over, never extended. A transfer is complete only when its length is known to be reached: the
sheet's size, the server's Content-Length, or, when the server sends neither, a Range request from the
end that the server answers "416: nothing more". A file whose sheet has no sha256 gets its first
download's sha256 recorded beside it (``<file>.sha256``), and every later download of it is checked
against that record.
"""

from __future__ import annotations

import hashlib
import http.client
import json
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
        except (urllib.error.URLError, http.client.HTTPException, OSError, _Truncated, _Changed) as err:
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
    _verify(source, part, dest)
    os.replace(part, dest)
    _meta_path(part).unlink(missing_ok=True)
    return dest


class _Truncated(Exception):
    pass


class _Changed(Exception):
    """The server's file is not the one the ``.part`` was started from: start over."""


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _validators(headers) -> dict[str, str | None]:
    return {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


def _start_over(part: Path, why: str, name: str) -> None:
    log.info("%s: %s; starting over", name, why)
    _discard(part)


def _fetch(source: Source, part: Path, timeout: float, chunk: int) -> None:
    meta_path = _meta_path(part)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if part.exists() and meta.get("url") != source.url:
        _start_over(part, f"{part.name} was not started from {source.url}", source.name)
        meta = {}
    have = part.stat().st_size if part.exists() else 0
    if source.size_bytes is not None and have == source.size_bytes:
        return
    request = urllib.request.Request(source.url, headers={"User-Agent": "mixmil-workflow"})
    if have:
        request.add_header("Range", f"bytes={have}-")
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:  # the server sends the whole (new) file instead of a range when it has changed
            request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            total = _content_range_total(err.headers)
            if total is None or total == have:
                log.info("%s: the partial file already holds all %d bytes", source.name, have)
                return
            _start_over(part, f"{part.name} has {have} bytes but the file has {total}", source.name)
            raise _Changed("the partial file was longer than the file") from err
        raise
    with response:
        now = _validators(response.headers)
        resumed = have and response.status == 206
        if have and not resumed:
            why = "the file changed on the server" if request.has_header("If-range") else "the server ignores Range"
            log.info("%s: %s; starting over", source.name, why)
            have = 0
        elif resumed and any(meta.get(k) and now[k] and meta[k] != now[k] for k in now):
            _start_over(part, "the file changed on the server since the partial download", source.name)
            raise _Changed("validators changed")
        meta_path.write_text(json.dumps({"url": source.url, **now}))
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
    if total is None:
        _confirm_end(source, received, timeout)


def _content_range_total(headers) -> int | None:
    """N of a ``Content-Range: bytes */N`` (or ``bytes a-b/N``) header, when the server sends one."""
    value = headers.get("Content-Range") or ""
    tail = value.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def _confirm_end(source: Source, received: int, timeout: float) -> None:
    """With no length from the sheet or the server, a closed connection may be a cut one: ask for the
    bytes after the end. 416 (nothing there) confirms it; more bytes mean a cut transfer, to resume."""
    request = urllib.request.Request(
        source.url, headers={"User-Agent": "mixmil-workflow", "Range": f"bytes={received}-"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status == 206 or int(response.headers.get("Content-Length") or -1) != received:
                raise _Truncated(f"the server sent {received} bytes without a length and has more")
    except urllib.error.HTTPError as err:
        if err.code == 416:
            return
        raise
    log.info("%s: %d bytes, the whole file (the server confirmed its length)", source.name, received)


def recorded_checksum_path(dest: Path) -> Path:
    """Where the first download of a file without a published sha256 records its checksum."""
    return dest.with_name(dest.name + ".sha256")


def _verify(source: Source, part: Path, dest: Path) -> None:
    size = part.stat().st_size
    if source.size_bytes is not None and size != source.size_bytes:
        _discard(part)
        raise DownloadError(
            f"{source.name}: downloaded {size} bytes but the source sheet expects {source.size_bytes}; the partial "
            "file was deleted. If the provider changed the file, update size_bytes and sha256 in config/sources.tsv"
        )
    digest = sha256_of(part)
    if source.sha256 is None:
        record = recorded_checksum_path(dest)
        if record.exists():
            recorded = record.read_text().split()[0]
            if digest != recorded:
                _discard(part)
                raise DownloadError(
                    f"{source.name}: sha256 {digest} of the download does not match {recorded}, recorded by its first "
                    f"download in {record}; the file was deleted. If the provider changed the file, delete {record}"
                )
        else:
            record.write_text(f"{digest}  {dest.name}\n")
            log.warning(
                "%s: no sha256 in the source sheet; this download's sha256 %s (%d bytes) is recorded in %s and later "
                "downloads are checked against it; put it in config/sources.tsv to check every copy",
                source.name,
                digest,
                size,
                record,
            )
    elif digest != source.sha256:
        _discard(part)
        raise DownloadError(
            f"{source.name}: sha256 {digest} of the download does not match {source.sha256} in the source sheet; "
            "the file was deleted. Rerun to download again; if the provider changed the file, update the sheet"
        )
