"""What an invoke returns to the caller, and the per-invocation summary built from telemetry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class InvokeResult:
    """The caller's view of one invoke, shaped like the RIE's answer.

    ``status`` is the platform's verdict (``success``, ``error``, ``timeout``,
    ``failure``); ``status_code`` and ``body`` are what the RIE's invoke endpoint
    answers: 200 with the response or the function's error document, 200 with
    ``Task timed out after N.NN seconds``, 502 for a crashed runtime or failed init.
    """

    status_code: int
    body: bytes
    request_id: str
    status: str
    error_type: str | None = None
    content_type: str = "text/plain; charset=utf-8"
    warnings: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class InvocationSummary:
    requestId: str
    status: str
    durationMs: float
    billedDurationMs: int
    maxMemoryUsedMB: int
    initDurationMs: float | None
    coldStart: bool
    response: Any
    errorType: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "requestId": self.requestId,
            "status": self.status,
            "durationMs": self.durationMs,
            "billedDurationMs": self.billedDurationMs,
            "maxMemoryUsedMB": self.maxMemoryUsedMB,
            "initDurationMs": self.initDurationMs,
            "coldStart": self.coldStart,
            "response": self.response,
            "errorType": self.errorType,
        }


def decoded_response(body: bytes) -> Any:
    """The response as JSON when it is JSON, else as text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")
