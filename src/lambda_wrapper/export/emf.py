"""The ``emf`` exporter: per-invocation metrics in CloudWatch Embedded Metric Format.

One JSON line per ``platform.report`` on stdout; CloudWatch Logs turns it into
metrics with no API call and no extra latency. The line comes back to us as a
``function`` record; the pipeline recognises it (``_aws`` key) and skips it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..telemetry.records import TelemetryEvent

DEFAULT_NAMESPACE = "LambdaWrapper"
_REPORT_METRICS = (
    ("durationMs", "Duration", "Milliseconds"),
    ("billedDurationMs", "BilledDuration", "Milliseconds"),
    ("maxMemoryUsedMB", "MaxMemoryUsed", "Megabytes"),
    ("initDurationMs", "InitDuration", "Milliseconds"),
)


class EmfExporter:
    name = "emf"

    def __init__(self, namespace: str = DEFAULT_NAMESPACE, stream: TextIO | None = None) -> None:
        self.namespace = namespace
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "unknown")
        self._stream = stream
        self._logs_dropped = 0

    def export(self, events: Sequence[TelemetryEvent]) -> None:
        lines = []
        for event in events:
            if event.type == "platform.logsDropped" and isinstance(event.record, dict):
                dropped = event.record.get("droppedRecords")
                self._logs_dropped += dropped if isinstance(dropped, int) else 0
            elif event.type == "platform.report" and isinstance(event.record, dict):
                lines.append(self._report_line(event))
        if lines:
            stream = self._stream or sys.stdout
            stream.write("".join(line + "\n" for line in lines))
            stream.flush()

    def _report_line(self, event: TelemetryEvent) -> str:
        record = event.record
        assert isinstance(record, dict)
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        assert isinstance(metrics, dict)
        values: dict[str, float] = {}
        units: list[dict[str, str]] = []
        for key, name, unit in _REPORT_METRICS:
            value = metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = value
                units.append({"Name": name, "Unit": unit})
        status = str(record.get("status", ""))
        error_type = str(record.get("errorType", ""))
        memory_size = metrics.get("memorySizeMB")
        out_of_memory = error_type == "Runtime.OutOfMemory" or (
            isinstance(memory_size, (int, float)) and metrics.get("maxMemoryUsedMB") == memory_size)
        flags = {
            "ColdStart": 1 if "initDurationMs" in metrics else 0,
            "Error": 1 if status not in ("success", "") else 0,
            "Timeout": 1 if status == "timeout" else 0,
            "OutOfMemory": 1 if out_of_memory else 0,
            "LogsDropped": self._logs_dropped,
        }
        self._logs_dropped = 0
        for name, value in flags.items():
            values[name] = value
            units.append({"Name": name, "Unit": "Count"})
        timestamp = int(event.epoch_ms) if event.epoch_ms is not None else 0
        document: dict[str, object] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{"Namespace": self.namespace, "Dimensions": [["FunctionName"]],
                                       "Metrics": units}],
            },
            "FunctionName": self.function_name,
            "requestId": event.request_id or "",
            "status": status,
        }
        document.update(values)
        return json.dumps(document, separators=(",", ":"))
