"""The self source's records (the self report in ``instruments``): made in the
platform's shape from the supervisor's invocation record, a timeout the watchdog
reports, or an invocation a dead process was running.

Loaded by ``SelfReporter.record_maker`` only where records are made: with a
subscription (the default on Lambda) the platform's records come, and none is.
"""

from __future__ import annotations

import os

from .. import aws
from ..telemetry import TelemetryEvent
from . import HOLD, INVOCATION, SELF, iso_time, lifetime_peak_rss_mb

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from . import SelfReporter

EXIT_ERROR = "Runtime.ExitError"
EXIT_TYPE = SystemExit.__name__  # the invocation record's errorType for sys.exit
OUT_OF_MEMORY = "Runtime.OutOfMemory"


def error_type_of(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, SystemExit):
        return EXIT_ERROR
    return type(error).__name__


class Measured:
    """One invocation as the self source knows it; its records are built from it."""

    __slots__ = ("duration_ms", "error_type", "init_duration_ms", "max_memory_mb", "request_id",
                 "started_epoch_s", "status")

    def __init__(self, request_id: str, started_epoch_s: float, duration_ms: float | None, status: str,
                 error_type: str | None, init_duration_ms: float | None,
                 max_memory_mb: int | None) -> None:
        self.request_id = request_id
        self.started_epoch_s = started_epoch_s
        self.duration_ms = duration_ms
        self.status = status
        self.error_type = error_type
        self.init_duration_ms = init_duration_ms
        self.max_memory_mb = max_memory_mb


class SelfRecords:
    """Makes a ``SelfReporter``'s records."""

    def __init__(self, reporter: SelfReporter) -> None:
        self.reporter = reporter
        try:
            self.memory_size_mb: int | None = int(os.environ.get(aws.FUNCTION_MEMORY_SIZE, ""))
        except ValueError:
            self.memory_size_mb = None
        self.function_version = os.environ.get(aws.FUNCTION_VERSION) or aws.LATEST_VERSION

    def measured(self, request_id: str, duration_ms: float, error: BaseException | None,
                 timed_out: bool = False) -> Measured:
        error_type = error_type_of(error)
        status = "timeout" if timed_out else ("error" if error is not None else "success")
        init_ms = None
        reporter = self.reporter
        if reporter.cold_start.cold_start and reporter.cold_start.first:
            init_ms = self.init_duration_ms()
        return Measured(request_id, reporter.started_epoch_s, round(duration_ms, 3), status, error_type,
                        init_ms, lifetime_peak_rss_mb())

    def from_invocation(self, event: TelemetryEvent) -> Measured | None:
        """What the supervisor's invocation record tells (on the flush's thread): its
        time is the invocation's end, its duration the handler's."""
        record = event.record
        if event.type != INVOCATION or not isinstance(record, dict) or event.epoch_ms is None:
            return None
        request_id, duration = record.get("requestId"), record.get("handlerDurationMs")
        if not isinstance(request_id, str) or not isinstance(duration, (int, float)):
            return None
        error_type = record.get("errorType")
        if not isinstance(error_type, str):
            error_type = None
        elif error_type == EXIT_TYPE:
            error_type = EXIT_ERROR
        init_ms = self.init_duration_ms() if record.get("coldStart") is True else None
        return Measured(request_id, event.epoch_ms / 1000.0 - duration / 1000.0, float(duration),
                        "success" if error_type is None else "error", error_type, init_ms,
                        lifetime_peak_rss_mb())

    def records_of(self, invocation: TelemetryEvent) -> list[TelemetryEvent]:
        measured = self.from_invocation(invocation)
        return [] if measured is None else self.records(measured)

    def init_duration_ms(self) -> float:
        timeline = self.reporter.timeline
        init_started = timeline.wrapper_started or timeline.started_wall
        return round(max(0.0, timeline.ended_wall - init_started) * 1000.0, 3)

    def died_in_flight(self, request_id: str, started_epoch_s: float, out_of_memory: bool | None) -> Measured:
        """An invocation a dead process was running (``export.InFlightMarker``): when
        it died is not known, so it has no duration; an out-of-memory kill is told from
        other deaths only where the cgroup's counter says so."""
        error_type = OUT_OF_MEMORY if out_of_memory else EXIT_ERROR
        return Measured(request_id, started_epoch_s, None, "error", error_type, None, None)

    def records(self, measured: Measured) -> list[TelemetryEvent]:
        request_id = measured.request_id
        start = measured.started_epoch_s
        duration = measured.duration_ms
        end = start + (duration or 0.0) / 1000.0
        end_time = iso_time(end)
        durations: dict[str, object] = {} if duration is None else {"durationMs": duration}
        done_metrics: dict[str, object] = dict(durations)
        done: dict[str, object] = {"requestId": request_id, "status": measured.status, "source": SELF,
                                   "metrics": done_metrics}
        report_metrics: dict[str, object] = dict(durations)
        if self.memory_size_mb is not None:
            report_metrics["memorySizeMB"] = self.memory_size_mb
        if measured.max_memory_mb is not None:
            report_metrics["maxMemoryUsedMB"] = measured.max_memory_mb
        if measured.init_duration_ms is not None:
            report_metrics["initDurationMs"] = measured.init_duration_ms
        report: dict[str, object] = {"requestId": request_id, "status": measured.status, "source": SELF,
                                     "metrics": report_metrics}
        if measured.error_type is not None:
            done["errorType"] = report["errorType"] = measured.error_type
        end_ms = end * 1000.0
        start_record: dict[str, object] = {"requestId": request_id, "version": self.function_version,
                                           "source": SELF}
        return [
            TelemetryEvent(iso_time(start), "platform.start", start_record, epoch_ms=start * 1000.0,
                           request_id=request_id),
            TelemetryEvent(end_time, "platform.runtimeDone", done, epoch_ms=end_ms, request_id=request_id,
                           metrics=done_metrics),
            TelemetryEvent(end_time, "platform.report", report, epoch_ms=end_ms, request_id=request_id,
                           metrics=report_metrics),
        ]

    def amendment(self, measured: Measured, replace: bool = False) -> Callable[[list[TelemetryEvent]], None]:
        """Adds the invocation's records to a decoded batch (``replace``: instead of what
        it holds), or hands them to the arbiter."""

        def add(events: list[TelemetryEvent]) -> None:
            if replace:
                del events[:]
            arbiter = self.reporter.arbiter
            if arbiter is not None and arbiter.mode == HOLD:
                # Built only if released: usually the platform's report comes first.
                arbiter.hold(measured.request_id, lambda: self.records(measured))
            else:
                events.extend(self.records(measured))

        return add
