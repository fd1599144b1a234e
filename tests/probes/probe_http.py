"""Shared by the probe runtimes: raw HTTP against the platform, and a notebook of results.

Probes run on the runtime image's bare interpreter (standard library only), as the
runtime process of a function. They record what a client of the Runtime and
Extensions APIs can observe — status, header names, JSON body keys in order,
``errorType`` — and leave values that differ per run (ids, deadlines) out.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
from typing import Any, NoReturn

# /tmp on Lambda; a platform without a mount namespace points TMPDIR at the function's tmp dir.
TMP_DIR = os.environ.get("TMPDIR", "/tmp")
OBSERVATIONS_PATH = os.path.join(TMP_DIR, "observations.json")
RUNTIME = "/2018-06-01/runtime"
EXTENSION = "/2020-01-01/extension"
TELEMETRY = "/2022-07-01/telemetry"


class Exchange:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Exchange:
    """One request on a fresh connection, with no timeout (``next`` calls block)."""
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80))
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Exchange(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def summarize(exchange: Exchange) -> dict[str, Any]:
    """The run-independent parts of an answer."""
    parsed = exchange.json()
    summary: dict[str, Any] = {
        "status": exchange.status,
        "header_names": sorted(exchange.headers),
        "content_type": exchange.headers.get("content-type"),
        # RAPID writes JSON with Go's json.Encoder, which ends every document in "\n".
        "trailing_newline": exchange.body.endswith(b"\n"),
    }
    if isinstance(parsed, dict):
        summary["body_keys"] = list(parsed)
        if "errorType" in parsed:
            summary["errorType"] = parsed["errorType"]
            summary["errorMessage"] = parsed.get("errorMessage")
        if "status" in parsed:
            summary["body_status"] = parsed["status"]
    else:
        summary["body"] = exchange.body.decode(errors="replace").rstrip("\n")
    return summary


class Notebook:
    """Observations keyed by step name, written atomically to /tmp."""

    def __init__(self) -> None:
        self.steps: dict[str, Any] = {}
        self._lock = threading.Lock()

    def record(self, step: str, exchange: Exchange, **extra: Any) -> Exchange:
        with self._lock:
            self.steps[step] = {**summarize(exchange), **extra}
        return exchange

    def note(self, step: str, value: Any) -> None:
        with self._lock:
            self.steps[step] = value

    def finish(self) -> None:
        """Save with the marker the test waits for."""
        self.save(complete=True)

    def save(self, complete: bool = False) -> None:
        with self._lock:
            data = json.dumps({**self.steps, "complete": complete}, indent=1, sort_keys=True)
        partial = OBSERVATIONS_PATH + ".partial"
        with open(partial, "w") as handle:
            handle.write(data)
        os.replace(partial, OBSERVATIONS_PATH)


def count_start(name: str) -> int:
    """Count this process start in TMP/<name>.count (which survives a reset).

    The platform reports every counter as an observation of its own, read from the file,
    so it is right even when the platform killed the probe before it saved anything.
    """
    path = os.path.join(TMP_DIR, f"{name}.count")
    starts = 1
    if os.path.exists(path):
        with open(path) as handle:
            starts += int(handle.read())
    with open(path, "w") as handle:
        handle.write(str(starts))
    return starts


def register(name: str | None, events: list[str], accept_feature: str | None = None) -> Exchange:
    headers = {"Content-Type": "application/json"}
    if name is not None:
        headers["Lambda-Extension-Name"] = name
    if accept_feature:
        headers["Lambda-Extension-Accept-Feature"] = accept_feature
    return call("POST", f"{EXTENSION}/register", {"events": events}, headers)


def next_invocation() -> Exchange:
    return call("GET", f"{RUNTIME}/invocation/next")


def post_response(request_id: str, body: bytes) -> Exchange:
    return call("POST", f"{RUNTIME}/invocation/{request_id}/response", body)


def error_body(error_type: str, message: str, request_id: str = "") -> dict[str, Any]:
    # The shape awslambdaric posts (contract 1.3).
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": []}


def fail(notebook: Notebook, reason: str) -> NoReturn:
    """Record why the probe gave up, then exit like a crashed runtime."""
    notebook.note("probe_failure", reason)
    notebook.finish()
    print(f"probe failed: {reason}", file=sys.stderr)
    sys.exit(2)
