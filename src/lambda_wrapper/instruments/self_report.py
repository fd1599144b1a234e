"""The self source: per-invocation records from the supervisor's own measurements.

Where the Telemetry API gives nothing (the subscription is refused, as local emulators
do with a 202, or fails), the supervisor still sees every invocation. It makes the
records the platform would have sent, with the same types and fields, so every
exporter and dashboard reads them unchanged, plus ``"source": "self"``
(``telemetry.invocations`` turns that into the invocation's source):

- ``platform.start``: when the runtime handed us the event.
- ``platform.runtimeDone`` and ``platform.report``: ``durationMs`` on our clock (from
  the event to our return), ``status`` (``success``, ``error``, ``timeout``), the
  ``errorType`` (the exception's type name; ``Runtime.ExitError`` for ``sys.exit``),
  ``memorySizeMB``, ``maxMemoryUsedMB`` (the process's peak RSS from ``getrusage``,
  the lifetime peak like the platform's) and, on a cold start, ``initDurationMs`` (from
  the wrapper script's first line to the end of Init).

What the self source cannot see: billing, the runtime's own overhead before it calls
us and after we return (``extensionOverhead``, response serialisation: a return value
that cannot be serialised is a success here), other processes' memory, and a death of
the process (out of memory, a crash): that invocation is counted at the next Init from
the spool's in-flight marker (``export.spool.InFlightMarker``).

A timeout is reported before it happens (where self is the source; with a subscription
the platform reports timeouts and no thread of ours watches for them): the watchdog
reports the invocation as timed out ``TIMEOUT_LEAD_MS`` before the deadline when the
handler is still running, and flushes, because the platform kills the process at the
deadline. If the handler then
returns after all (within the lead), the timeout report stands and nothing else is
reported for that invocation.

Source selection (``LAMBDA_WRAPPER_TELEMETRY_SOURCE``), decided once at Init from the
subscription's outcome, and the guarantee that one invocation is never reported twice:

- ``platform``: no self records.
- ``self``: self records only; the platform's start, runtimeDone and report records
  are dropped by the pipeline (``SourceArbiter``).
- ``auto`` without a subscription: self records only (the platform sends none).
- ``auto`` with a subscription: each self record is held in memory until the
  invocation's ``platform.report`` is seen (the self record is dropped) or until
  ``HOLD_INVOCATIONS`` later invocations went by without it, or the environment shuts
  down (the self record is exported, and the platform's records of that invocation,
  should they come later, are dropped).

The handler's thread adds nothing of its own but the in-flight marker's two stores
into a mapped page (and, where self is the source, arming the watchdog): the records
are built on the flush's thread (``add_records``, an amendment of the supervisor's
invocation record) from that record, which already holds the request id, the handler's
duration, the error type and the cold start; its own time is the invocation's end. With
a subscription they are built only if they are released. The peak RSS is read when
they are built: the lifetime peak as of that flush (or release), so a later invocation
of the same flush interval (``export.policy``) can raise it.
"""

from __future__ import annotations

import os
import time

from .. import aws
from ..telemetry.records import TelemetryEvent
from .records import INVOCATION, iso_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .coldstart import ColdStartTracker, InitTimeline

PLATFORM = "platform"
SELF = "self"
HOLD = "hold"  # auto with a subscription: self records wait for the platform's
AUTO = "auto"
SUBSCRIBED = "subscribed"  # extension.subscription.SubscriptionOutcome.SUBSCRIBED
HOLD_INVOCATIONS = 3
TIMEOUT_LEAD_MS = 100
INVOCATION_TYPES = frozenset(("platform.start", "platform.runtimeDone", "platform.report"))
MAX_RELEASED = 256
EXIT_ERROR = "Runtime.ExitError"
EXIT_TYPE = SystemExit.__name__  # the invocation record's errorType for sys.exit
OUT_OF_MEMORY = "Runtime.OutOfMemory"


def choose_source(setting: str, subscription_state: str | None, subscribed_elsewhere: bool) -> str:
    """``platform``, ``self`` or ``hold`` from the setting and the subscription's outcome.

    ``subscribed_elsewhere``: under Managed Instances one worker process subscribes for
    all, so the others get the platform's records through it.
    """
    if setting in (PLATFORM, SELF):
        return setting
    if subscription_state == SUBSCRIBED:
        return HOLD
    if subscription_state is None and subscribed_elsewhere:
        return PLATFORM
    return SELF


def error_type_of(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, SystemExit):
        return EXIT_ERROR
    return type(error).__name__


def _peak_rss_mb() -> int | None:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # KiB on Linux
    except (ImportError, OSError, ValueError):
        return None


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


class SelfReporter:
    """Turns each invocation into platform-shaped records, off the handler's thread."""

    def __init__(
        self, timeline: InitTimeline, cold_start: ColdStartTracker, arbiter: SourceArbiter | None
    ) -> None:
        self.timeline = timeline
        self.cold_start = cold_start
        self.arbiter = arbiter
        try:
            self.memory_size_mb: int | None = int(os.environ.get(aws.FUNCTION_MEMORY_SIZE, ""))
        except ValueError:
            self.memory_size_mb = None
        self.function_version = os.environ.get(aws.FUNCTION_VERSION) or aws.LATEST_VERSION
        self.started_epoch_s = 0.0

    def started(self) -> None:
        self.started_epoch_s = time.time()

    def measured(self, request_id: str, duration_ms: float, error: BaseException | None,
                 timed_out: bool = False) -> Measured:
        error_type = error_type_of(error)
        status = "timeout" if timed_out else ("error" if error is not None else "success")
        init_ms = None
        if self.cold_start.cold_start and self.cold_start.first:
            init_ms = self.init_duration_ms()
        return Measured(request_id, self.started_epoch_s, round(duration_ms, 3), status, error_type, init_ms,
                        _peak_rss_mb())

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
                        "success" if error_type is None else "error", error_type, init_ms, _peak_rss_mb())

    def add_records(self, events: list[TelemetryEvent]) -> None:
        """The amendment of the supervisor's invocation record (``events`` holds just it):
        adds its self records, or, with a subscription, hands the arbiter the means to
        build them, used only if the platform's report does not come."""
        if len(events) != 1:
            return
        invocation = events[0]
        arbiter = self.arbiter
        if arbiter is not None and arbiter.mode == HOLD:
            if invocation.request_id is not None:
                arbiter.hold(invocation.request_id, lambda: self.records_of(invocation))
        else:
            events.extend(self.records_of(invocation))

    def records_of(self, invocation: TelemetryEvent) -> list[TelemetryEvent]:
        measured = self.from_invocation(invocation)
        return [] if measured is None else self.records(measured)

    def init_duration_ms(self) -> float:
        timeline = self.timeline
        init_started = timeline.wrapper_started or timeline.started_wall
        return round(max(0.0, timeline.ended_wall - init_started) * 1000.0, 3)

    def died_in_flight(self, request_id: str, started_epoch_s: float, out_of_memory: bool | None) -> Measured:
        """An invocation a dead process was running (``export.spool.InFlightMarker``): when
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
        done: dict[str, object] = {"requestId": request_id, "status": measured.status, "source": SELF,
                                   "metrics": dict(durations)}
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
        return [
            _event("platform.start", {"requestId": request_id, "version": self.function_version,
                                      "source": SELF}, start),
            _event("platform.runtimeDone", done, end, end_time),
            _event("platform.report", report, end, end_time),
        ]

    def amendment(self, measured: Measured, replace: bool = False) -> Callable[[list[TelemetryEvent]], None]:
        """Adds the invocation's records to a decoded batch (``replace``: instead of what
        it holds), or hands them to the arbiter."""

        def add(events: list[TelemetryEvent]) -> None:
            if replace:
                del events[:]
            if self.arbiter is not None and self.arbiter.mode == HOLD:
                # Built only if released: usually the platform's report comes first.
                self.arbiter.hold(measured.request_id, lambda: self.records(measured))
            else:
                events.extend(self.records(measured))

        return add


def _event(
    type_: str, record: dict[str, object], epoch_s: float, time_text: str | None = None
) -> TelemetryEvent:
    request_id = record.get("requestId")
    metrics = record.get("metrics")
    return TelemetryEvent(time_text or iso_time(epoch_s), type_, record, epoch_ms=epoch_s * 1000.0,
                          request_id=request_id if isinstance(request_id, str) else None,
                          metrics=metrics if isinstance(metrics, dict) else None)


class SourceArbiter:
    """In the pipeline's flush: one source per invocation.

    ``self``: the platform's start, runtimeDone and report records are dropped.
    ``hold``: self records wait (``hold``) until the platform's report of the same
    invocation shows up in a decoded batch (``filter`` drops them) or until
    ``HOLD_INVOCATIONS`` later invocations were held, or the shutdown (``release_due``
    gives them out); the platform's records of a released invocation are then dropped.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._held: dict[str, tuple[int, Callable[[], list[TelemetryEvent]]]] = {}
        self._released: dict[str, None] = {}
        self._invocations = 0
        self._release_all = False
        self.dropped_self = 0
        self.dropped_platform = 0
        self.released = 0

    def hold(self, request_id: str, make_records: Callable[[], list[TelemetryEvent]]) -> None:
        self._invocations += 1
        self._held[request_id] = (self._invocations, make_records)

    def filter(self, events: list[TelemetryEvent]) -> list[TelemetryEvent]:
        if self.mode == SELF:
            kept = [e for e in events if e.type not in INVOCATION_TYPES or _is_self(e)]
        elif not self._held and not self._released:
            return events
        else:
            kept = []
            for event in events:
                request_id = event.request_id
                if event.type in INVOCATION_TYPES and request_id is not None and not _is_self(event):
                    if request_id in self._released:
                        continue
                    if event.type == "platform.report" and self._held.pop(request_id, None) is not None:
                        self.dropped_self += 1
                kept.append(event)
        self.dropped_platform += len(events) - len(kept)
        return kept

    def release_all(self) -> None:
        """At shutdown, after the last platform records could come: give out the rest."""
        self._release_all = True

    def release_due(self) -> list[TelemetryEvent]:
        due = [request_id for request_id, (index, _) in self._held.items()
               if self._release_all or self._invocations - index >= HOLD_INVOCATIONS]
        released: list[TelemetryEvent] = []
        for request_id in due:
            released += self._held.pop(request_id)[1]()
            self._released[request_id] = None
            self.released += 1
        while len(self._released) > MAX_RELEASED:
            del self._released[next(iter(self._released))]
        return released


def _is_self(event: TelemetryEvent) -> bool:
    record = event.record
    return isinstance(record, dict) and record.get("source") == SELF
