"""The platform's single event stream: recorded in order, and fed to subscribers.

Log lines become ``function`` (runtime process) or ``extension`` (external
extension processes) records. With ``AWS_LAMBDA_LOG_FORMAT=JSON`` a line that is a
JSON object is sent as that object, any other line as ``{timestamp, level,
message}`` (contract 3.4); otherwise records are the line itself, ``\\n`` kept.
"""

from __future__ import annotations

import json
import threading
import time
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
        self.function_lines([line])

    def extension_line(self, line: str) -> None:
        self.extension_lines([line])

    def function_lines(self, lines: list[str]) -> None:
        self._lines("function", self.function_output, lines)

    def extension_lines(self, lines: list[str]) -> None:
        self._lines("extension", self.extension_output, lines)

    def _lines(self, kind: str, output: list[str], lines: list[str]) -> None:
        """The lines of one pipe read: one timestamp (when the platform read them,
        as on Lambda) and one trip through the bus's lock for all of them."""
        at = time.time()
        stamp = records.iso_time(at)
        if self.json_logs:
            events = [{"time": stamp, "type": kind, "record": self._record(line, at)} for line in lines]
        else:
            events = [{"time": stamp, "type": kind, "record": line} for line in lines]
        with self._lock:
            output.extend(line.rstrip("\n") for line in lines)
            self.events.extend(events)
            if self._bus is not None:
                self._bus.publish_lines(kind, events, lines)
        for listener in self._listeners:
            for event in events:
                listener(event)

    def logs_dropped(self, dropped_bytes: int, dropped_records: int, reason: str) -> None:
        self.emit(records.logs_dropped(dropped_bytes, dropped_records, reason))

    def _record(self, line: str, at: float) -> dict[str, Any]:
        """A line as a JSON-format record (``AWS_LAMBDA_LOG_FORMAT=JSON``)."""
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return dict(parsed)
        return {"timestamp": records.iso_time(at), "level": "INFO", "message": line.rstrip("\n")}
