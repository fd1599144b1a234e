"""Builders for the Telemetry API events the platform emits (contract 3.3).

Every event is ``{"time", "type", "record"}``; times are ISO-8601 UTC with
milliseconds, the format RAPID uses. Optional fields are left out rather than
sent as null, as on Lambda.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

Record = dict[str, Any]
Event = dict[str, Any]


# The last second formatted: log lines come thousands a second, and strftime for
# each one was a fifth of the platform's cost per line. (A tuple swap is atomic.)
_last_second: tuple[int, str] = (-1, "")


def iso_time(epoch_seconds: float | None = None) -> str:
    moment = time.time() if epoch_seconds is None else epoch_seconds
    # Round to microseconds the way datetime.fromtimestamp does, then truncate.
    fraction, whole = math.modf(moment)
    microseconds = round(fraction * 1_000_000)
    second = int(whole) + microseconds // 1_000_000
    millisecond = (microseconds % 1_000_000) // 1000
    global _last_second
    cached_second, prefix = _last_second
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _last_second = (second, prefix)
    return f"{prefix}{millisecond:03d}Z"


def event(event_type: str, record: Record | str, at: float | None = None) -> Event:
    return {"time": iso_time(at), "type": event_type, "record": record}


def milliseconds(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def span(name: str, start_epoch: float, duration_s: float) -> Record:
    return {"name": name, "start": iso_time(start_epoch), "durationMs": milliseconds(duration_s)}


def tracing(trace_id: str | None) -> Record | None:
    return {"type": "X-Amzn-Trace-Id", "value": trace_id} if trace_id else None


def _with_optional(record: Record, **optional: Any) -> Record:
    record.update({key: value for key, value in optional.items() if value is not None})
    return record


def init_start(
    phase: str,
    function_name: str,
    function_version: str,
    instance_id: str,
    memory_mb: int,
    runtime_version: str,
    runtime_version_arn: str,
) -> Event:
    return event(
        "platform.initStart",
        {
            "initializationType": "on-demand",
            "phase": phase,
            "runtimeVersion": runtime_version,
            "runtimeVersionArn": runtime_version_arn,
            "functionName": function_name,
            "functionVersion": function_version,
            "instanceId": instance_id,
            "instanceMaxMemory": memory_mb * 1024 * 1024,
        },
    )


def init_runtime_done(phase: str, status: str, error_type: str | None) -> Event:
    record = {"initializationType": "on-demand", "phase": phase, "status": status}
    return event("platform.initRuntimeDone", _with_optional(record, errorType=error_type))


def init_report(phase: str, status: str, duration_s: float, error_type: str | None) -> Event:
    record: Record = {
        "initializationType": "on-demand",
        "phase": phase,
        "status": status,
        "metrics": {"durationMs": milliseconds(duration_s)},
    }
    return event("platform.initReport", _with_optional(record, errorType=error_type))


def extension(name: str, state: str, events: list[str], error_type: str | None) -> Event:
    return event(
        "platform.extension",
        _with_optional({"name": name, "state": state, "events": events}, errorType=error_type),
    )


def telemetry_subscription(name: str, types: list[str]) -> Event:
    return event("platform.telemetrySubscription", {"name": name, "state": "Subscribed", "types": types})


def logs_subscription(name: str, types: list[str]) -> Event:
    return event("platform.logsSubscription", {"name": name, "state": "Subscribed", "types": types})


def start(request_id: str, function_arn: str, trace_id: str | None) -> Event:
    record: Record = {"requestId": request_id, "version": "$LATEST", "functionArn": function_arn}
    return event("platform.start", _with_optional(record, tracing=tracing(trace_id)))


def runtime_done(
    request_id: str,
    status: str,
    error_type: str | None,
    duration_s: float | None,
    produced_bytes: int | None,
    spans: list[Record],
    trace_id: str | None,
) -> Event:
    record: Record = {"requestId": request_id, "status": status}
    if duration_s is not None:
        metrics: Record = {"durationMs": milliseconds(duration_s)}
        if produced_bytes is not None:
            metrics["producedBytes"] = produced_bytes
        record["metrics"] = metrics
    if spans:
        record["spans"] = spans
    return event(
        "platform.runtimeDone", _with_optional(record, errorType=error_type, tracing=tracing(trace_id))
    )


def report(
    request_id: str,
    status: str,
    error_type: str | None,
    metrics: Record,
    spans: list[Record],
    trace_id: str | None,
) -> Event:
    record: Record = {"requestId": request_id, "status": status, "metrics": metrics}
    if spans:
        record["spans"] = spans
    return event("platform.report", _with_optional(record, errorType=error_type, tracing=tracing(trace_id)))


def logs_dropped(dropped_bytes: int, dropped_records: int, reason: str) -> Event:
    return event(
        "platform.logsDropped",
        {"droppedBytes": dropped_bytes, "droppedRecords": dropped_records, "reason": reason},
    )
