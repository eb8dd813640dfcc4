"""A real HTTP server on 127.0.0.1 for the download tests: serves files from a folder, honours Range
requests (as the Box/Zenodo servers do), and can cut the first transfers short to exercise resuming."""

from __future__ import annotations

import contextlib
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
        if ranged and ranged.startswith("bytes=") and self.state["honour_range"]:
            start = int(ranged[len("bytes=") :].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.state["cut_first"] > 0:
            # Announce the full length, send a part, close: a dropped connection mid-transfer.
            self.state["cut_first"] -= 1
            self.wfile.write(body[: max(1, len(body) // 3)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve(folder: Path, cut_first: int = 0, honour_range: bool = True) -> Iterator[tuple[str, dict]]:
    """Serve ``folder`` on a free port; yields the base URL and the request log/state."""
    state = {"ranges": [], "cut_first": cut_first, "honour_range": honour_range}
    handler = partial(_RangeHandler, directory=str(folder), state=state)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
