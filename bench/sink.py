"""A stand-in collector: accepts any POST (OTLP/HTTP, our http exporter) and answers 200.

It runs as its own process (``python -m bench.sink PORT``) so that its work never
competes for the harness's GIL, which the in-process sandbox needs. ``GET /_stats``
returns and resets the request counts per path, so each trial can record what the
variant actually sent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATS_PATH = "/_stats"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._drain_chunked()
        with self.lock:
            self.counts[self.path] += 1
        # An empty protobuf message is a valid OTLP Export*ServiceResponse.
        protobuf = "protobuf" in self.headers.get("Content-Type", "")
        body = b"" if protobuf else b"{}"
        self._answer(200, body, "application/x-protobuf" if protobuf else "application/json")

    def do_GET(self) -> None:
        if self.path != STATS_PATH:
            self._answer(404, b"{}", "application/json")
            return
        with self.lock:
            body = json.dumps(dict(self.counts)).encode()
            self.counts.clear()
        self._answer(200, body, "application/json")

    def _drain_chunked(self) -> None:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            self.rfile.read(size + 2)
            if size == 0:
                return

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class SinkProcess:
    """The sink as a child process of the harness."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.sink", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        self._wait_until_listening()

    def take_counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + STATS_PATH, timeout=5) as response:
            counts: dict[str, int] = json.loads(response.read())
        return counts

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the sink exited with {self._process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("the sink did not start listening")

    def __enter__(self) -> SinkProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
