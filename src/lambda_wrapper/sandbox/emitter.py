"""The platform's single event stream: recorded in order, and fed to subscribers.

Log lines become ``function`` (runtime process) or ``extension`` (external
extension processes) records. With ``AWS_LAMBDA_LOG_FORMAT=JSON`` a line that is a
JSON object is sent as that object, any other line as ``{timestamp, level,
message}`` (contract 3.4); otherwise records are the line itself, ``\\n`` kept.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from . import records
from .records import Event
from .subscriber_views import StoredEvent
from .telemetry_bus import TelemetryBus


class Emitter:
    def __init__(self, json_logs: bool) -> None:
        self.json_logs = json_logs
        self.events: list[Event] = []
        self.function_output: list[str] = []
        self.extension_output: list[str] = []
        self._lock = threading.Lock()
        self._bus: TelemetryBus | None = None
        self._listeners: list[Callable[[Event], None]] = []

    def attach(self, bus: TelemetryBus) -> None:
        self._bus = bus

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event, raw_line: str | None = None) -> None:
        with self._lock:
            self.events.append(event)
            if self._bus is not None:
                self._bus.publish(StoredEvent(event, raw_line))
        for listener in self._listeners:
            listener(event)

    def function_line(self, line: str) -> None:
        with self._lock:
            self.function_output.append(line.rstrip("\n"))
        self.emit(records.event("function", self._record(line)), raw_line=line)

    def extension_line(self, line: str) -> None:
        with self._lock:
            self.extension_output.append(line.rstrip("\n"))
        self.emit(records.event("extension", self._record(line)), raw_line=line)

    def logs_dropped(self, dropped_bytes: int, dropped_records: int, reason: str) -> None:
        self.emit(records.logs_dropped(dropped_bytes, dropped_records, reason))

    def _record(self, line: str) -> dict[str, Any] | str:
        if not self.json_logs:
            return line
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return dict(parsed)
        return {"timestamp": records.iso_time(), "level": "INFO", "message": line.rstrip("\n")}
