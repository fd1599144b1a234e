"""The toolkit's own records, shaped like Telemetry API events so one pipeline carries both.

The exporters encode exactly these types and fields (``docs/instruments.md``).
"""

from __future__ import annotations

import time

from ..telemetry.records import TelemetryEvent

INVOCATION = "lambda_wrapper.invocation"
INIT = "lambda_wrapper.init"
IMPORT_PROFILE = "lambda_wrapper.import_profile"
WARNING = "lambda_wrapper.warning"
SPAN = "lambda_wrapper.span"  # one downstream call (instruments.calls)
LOSS = "lambda_wrapper.loss"  # records received but never exported, counted (export.pipeline)


def own_event(
    type_: str, record: dict[str, object], request_id: str | None = None, epoch_s: float | None = None
) -> TelemetryEvent:
    now = time.time() if epoch_s is None else epoch_s
    return TelemetryEvent(iso_time(now), type_, record, epoch_ms=now * 1000.0, request_id=request_id)


def iso_time(epoch_s: float) -> str:
    """``2026-11-26T15:23:59.332Z``, the Telemetry API's own time format."""
    epoch_ms = int(epoch_s * 1000)
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded to the microsecond the clocks can resolve."""
    return round(seconds * 1000.0, 3)


def mib(size_bytes: float) -> float:
    return round(size_bytes / (1024 * 1024), 2)
