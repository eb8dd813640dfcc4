"""A real HTTP server on 127.0.0.1 for the download tests: serves files from a folder, honours Range
requests (as the Box/Zenodo servers do, with 416 past the end), can cut the first transfers short to
exercise resuming, can send ETag / Last-Modified validators (honouring If-Range) or no Content-Length."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _RangeHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args, state: dict, **kwargs):
        self.state = state
        super().__init__(*args, **kwargs)

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        ranged = self.headers.get("Range")
        self.state["ranges"].append(ranged)
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"' if self.state["validators"] else None
        if_range = self.headers.get("If-Range")
        if ranged and ranged.startswith("bytes=") and self.state["honour_range"] and (if_range in (None, etag)):
            start = int(ranged[len("bytes=") :].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        if self.state["send_length"]:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True  # the end of the body is the end of the connection
        self.end_headers()
        if self.state["cut_first"] > 0:
            # Send a part, close: a dropped connection mid-transfer (announced length or not).
            self.state["cut_first"] -= 1
            self.wfile.write(body[: max(1, len(body) // 3)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve(
    folder: Path, cut_first: int = 0, honour_range: bool = True, validators: bool = False, send_length: bool = True
) -> Iterator[tuple[str, dict]]:
    """Serve ``folder`` on a free port; yields the base URL and the request log/state (which a test may
    change between requests, e.g. ``cut_first``)."""
    state = {"ranges": [], "cut_first": cut_first, "honour_range": honour_range, "validators": validators,
             "send_length": send_length}  # fmt: skip
    handler = partial(_RangeHandler, directory=str(folder), state=state)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
