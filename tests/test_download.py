"""Resumable, verified downloads against a real HTTP server on 127.0.0.1 (nothing leaves the machine)."""

from __future__ import annotations

import hashlib

import pytest

from mixmil_workflow.download import DownloadError, Source, download, read_source_sheet
from tests.support.http_server import serve


@pytest.fixture()
def payload(tmp_path):
    data = bytes(range(256)) * 4000  # ~1 MB
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "features.zip").write_bytes(data)
    return folder, data, hashlib.sha256(data).hexdigest()


def test_download_checks_size_and_checksum(payload, tmp_path):
    folder, data, sha = payload
    with serve(folder) as (url, _):
        dest = download(Source("c16", f"{url}/features.zip", sha, len(data)), tmp_path / "out" / "f.zip")
    assert dest.read_bytes() == data
    assert not (tmp_path / "out" / "f.zip.part").exists()


def test_interrupted_transfers_resume_with_range_requests(payload, tmp_path):
    folder, data, sha = payload
    with serve(folder, cut_first=2) as (url, state):
        dest = download(Source("c16", f"{url}/features.zip", sha, len(data)), tmp_path / "f.zip", sleep=lambda s: None)
    assert dest.read_bytes() == data
    # First request from byte 0, then two resumes from where the cut transfers stopped.
    assert state["ranges"][0] is None and all(r.startswith("bytes=") for r in state["ranges"][1:])
    assert len(state["ranges"]) == 3


def test_a_server_without_range_support_restarts_cleanly(payload, tmp_path):
    folder, data, sha = payload
    with serve(folder, cut_first=1, honour_range=False) as (url, _):
        dest = download(Source("c16", f"{url}/features.zip", sha, None), tmp_path / "f.zip", sleep=lambda s: None)
    assert dest.read_bytes() == data


def test_checksum_mismatch_fails_and_leaves_no_file(payload, tmp_path):
    folder, data, _ = payload
    with serve(folder) as (url, _), pytest.raises(DownloadError, match="does not match"):
        download(Source("c16", f"{url}/features.zip", "0" * 64, None), tmp_path / "f.zip")
    assert list(tmp_path.glob("f.zip*")) == []


def test_missing_file_and_exhausted_retries_name_the_fix(payload, tmp_path):
    folder, data, sha = payload
    with serve(folder) as (url, _), pytest.raises(DownloadError, match="HTTP 404.*source sheet"):
        download(Source("c16", f"{url}/gone.zip"), tmp_path / "f.zip")
    with serve(folder, cut_first=10) as (url, _), pytest.raises(DownloadError, match="rerunning the rule resumes"):
        download(
            Source("c16", f"{url}/features.zip", sha, len(data)), tmp_path / "g.zip", retries=2, sleep=lambda s: None
        )
    assert not (tmp_path / "g.zip").exists() and (tmp_path / "g.zip.part").exists()


def test_source_sheet_is_validated(tmp_path):
    sheet = tmp_path / "sources.tsv"
    sheet.write_text("source\turl\tsha256\tsize_bytes\tdescription\nc16\thttp://x/y.zip\tabc\t\tfeatures\n")
    with pytest.raises(ValueError, match="sha256 of 'c16' is not 64 hex digits"):
        read_source_sheet(sheet)
    sheet.write_text("source\turl\nc16\thttp://x/y.zip\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_source_sheet(sheet)


def test_the_shipped_sheet_lists_the_camelyon16_archive():
    from pathlib import Path

    sources = read_source_sheet(Path(__file__).resolve().parents[1] / "config" / "sources.tsv")
    assert sources["camelyon16_features"].url.startswith("https://uwmadison.box.com/shared/static/")


def test_a_partial_file_of_another_url_is_started_over(payload, tmp_path):
    folder, data, _ = payload
    (folder / "other.zip").write_bytes(b"x" * 5000)
    dest = tmp_path / "f.zip"
    with serve(folder) as (url, _):
        download(Source("other", f"{url}/other.zip"), dest)  # records other.zip's checksum beside f.zip
        dest.rename(tmp_path / "f.zip.part")  # a stale .part, as a failed earlier source would leave
        (tmp_path / "f.zip.sha256").unlink()
        (tmp_path / "f.zip.part.json").write_text('{"url": "' + url + '/other.zip"}')
        download(Source("c16", f"{url}/features.zip"), dest)
    assert dest.read_bytes() == data  # not other.zip's bytes extended by a range of features.zip


def test_a_file_changed_on_the_server_restarts_the_partial_download(payload, tmp_path):
    folder, data, _ = payload
    with serve(folder, cut_first=1, validators=True) as (url, state):
        with pytest.raises(DownloadError):
            download(Source("c16", f"{url}/features.zip"), tmp_path / "f.zip", retries=0)
        assert (tmp_path / "f.zip.part").exists() and "etag" in (tmp_path / "f.zip.part.json").read_text()
        changed = bytes(reversed(data))
        (folder / "features.zip").write_bytes(changed)  # the provider replaced the file
        download(Source("c16", f"{url}/features.zip"), tmp_path / "f.zip")
    assert (tmp_path / "f.zip").read_bytes() == changed
    assert not (tmp_path / "f.zip.part.json").exists()


def test_a_cut_transfer_without_content_length_is_not_taken_as_complete(payload, tmp_path):
    folder, data, _ = payload
    with serve(folder, cut_first=1, send_length=False) as (url, state):
        dest = download(Source("c16", f"{url}/features.zip"), tmp_path / "f.zip", sleep=lambda s: None)
    assert dest.read_bytes() == data
    assert state["ranges"][-1] == f"bytes={len(data)}-"  # the end confirmed by a 416


def test_http_416_on_a_complete_partial_file_finishes_it(payload, tmp_path):
    folder, data, sha = payload
    part = tmp_path / "f.zip.part"
    part.write_bytes(data)  # a run that stopped after the last byte, before the rename
    with serve(folder) as (url, _):
        (tmp_path / "f.zip.part.json").write_text('{"url": "' + url + '/features.zip"}')
        dest = download(Source("c16", f"{url}/features.zip", sha), tmp_path / "f.zip", retries=0)
    assert dest.read_bytes() == data and not part.exists()


def test_a_missing_checksum_is_recorded_on_first_download_and_checked_after(payload, tmp_path):
    folder, data, sha = payload
    with serve(folder) as (url, _):
        dest = download(Source("c16", f"{url}/features.zip"), tmp_path / "f.zip")
        record = tmp_path / "f.zip.sha256"
        assert record.read_text().split() == [sha, "f.zip"]
        dest.unlink()
        (folder / "features.zip").write_bytes(data[:-1] + b"?")  # the provider's file changed
        with pytest.raises(DownloadError, match=r"recorded by its first download in .*f\.zip\.sha256"):
            download(Source("c16", f"{url}/features.zip"), tmp_path / "f.zip")
    assert not dest.exists() and not (tmp_path / "f.zip.part").exists()
