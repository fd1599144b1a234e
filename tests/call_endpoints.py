"""The servers downstream-call tests call: moto for AWS, a plain HTTP server, a flaky AWS endpoint.

- ``HttpTarget``: ``/ok`` answers 200 ``ok``, ``/status/<code>`` answers that code; it
  keeps every request's headers (to see propagated trace headers).
- ``FlakyDynamoDB``: a DynamoDB JSON endpoint whose first answer is a 500 (botocore
  retries it) and the next ``ListTables`` answers; it checks each request's SigV4
  signature with botocore's own signer and keeps the verdicts.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREDENTIALS = ("testing", "testing")


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self.requests: list[dict[str, Any]] = []
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


class HttpTargetHandler(_Handler):
    def do_GET(self) -> None:
        body = self._body()
        owner = self.server.owner  # type: ignore[attr-defined]
        owner.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                               "body": body})
        path = self.path.split("?")[0]
        if path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]), b"status")
        else:
            self._answer(200, b"ok", {"Content-Type": "text/plain"})

    do_POST = do_GET


class FlakyDynamoDBHandler(_Handler):
    def do_POST(self) -> None:
        body = self._body()
        owner = self.server.owner  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        valid = signature_valid(self.command, owner.url + self.path, headers, body)
        owner.requests.append({"path": self.path, "headers": headers, "body": body, "signature_valid": valid})
        if len(owner.requests) == 1:
            answer = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "flaky"}
            self._answer(500, json.dumps(answer).encode(), {"x-amzn-RequestId": "FLAKY0"})
        else:
            headers = {"x-amzn-RequestId": f"FLAKY{len(owner.requests)}",
                       "Content-Type": "application/x-amz-json-1.0"}
            self._answer(200, b'{"TableNames": ["calls"]}', headers)


def signature_valid(method: str, url: str, headers: dict[str, str], body: bytes) -> bool:
    """Recompute the request's SigV4 signature from the headers it says it signed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = headers.get("authorization", "")
    fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    _, _, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(*CREDENTIALS), service, region)
    canonical = signer.canonical_request(request)
    return bool(signer.signature(signer.string_to_sign(request, canonical), request) == fields["Signature"])


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def endpoints() -> Iterator[dict[str, Any]]:
    """A fresh moto server, HTTP target and flaky endpoint: the same state for every run."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    # moto keeps its backends per process: start every run from empty ones.
    reset = urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset).read()
    target, flaky = _Server(HttpTargetHandler), _Server(FlakyDynamoDBHandler)
    try:
        yield {"aws": f"http://{host}:{port}", "http": target.url, "flaky": flaky.url,
               "closed": closed_port_url(), "target": target, "flaky_server": flaky}
    finally:
        target.close()
        flaky.close()
        moto.stop()
