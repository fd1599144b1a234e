"""The toolkit's own diagnostics: one JSON line each, on stderr.

Every line carries ``"logger": "lambda_wrapper"`` and an ``"event"`` name, so users can
filter them in CloudWatch and our own pipeline can recognise (and never re-export)
them when they come back through the Telemetry API as ``function`` records.
"""

from __future__ import annotations

import json
import sys
import threading
import time

_once_lock = threading.Lock()
_already_said: set[str] = set()


def emit(level: str, event: str, message: str, **fields: object) -> None:
    line: dict[str, object] = {"logger": "lambda_wrapper", "level": level, "event": event, "message": message}
    line.update(fields)
    line["timestamp"] = round(time.time(), 3)
    try:
        sys.stderr.write(json.dumps(line, default=str) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must never break the function


def emit_once(level: str, event: str, message: str, **fields: object) -> None:
    """Say something at most once per process (for conditions that repeat per invoke)."""
    with _once_lock:
        if event in _already_said:
            return
        _already_said.add(event)
    emit(level, event, message, **fields)
