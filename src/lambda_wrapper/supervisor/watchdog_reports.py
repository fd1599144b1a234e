"""What the watchdog reports for the supervisor: the timeout and memory warnings, the self
source's timeout report, and the memory check as the handler returns.

Loaded with the watchdog (``instruments.watchdog``), only where one of them is on
(``Supervisor.start_watchdog``): with the defaults on Lambda neither warning is on and
the platform reports timeouts.
"""

from __future__ import annotations

import os

from .. import aws
from ..instruments import (
    TIMEOUT_LEAD_MS,
    WARNING,
    lifetime_peak_rss_mb,
    mib,
    own_event,
    rss_bytes,
    self_status,
)
from ..settings import emit

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from ..instruments.watchdog import Armed
    from . import Supervisor


def start_watchdog(supervisor: Supervisor) -> None:
    """Start the watchdog with what the settings and the telemetry source ask of it (if anything)."""
    settings = supervisor.settings
    warning_ms = settings.timeout_warning_ms if settings.feature_enabled("the timeout warning") else 0
    pct = settings.memory_warning_pct if settings.feature_enabled("the memory warning") else 0
    limit = memory_limit_bytes(pct) if pct else None
    # Where the platform's records come (auto with a subscription), the platform
    # reports timeouts: no thread of ours just for that.
    report_timeouts = supervisor.self_reporter is not None and supervisor.telemetry_source == "self"
    if not warning_ms and limit is None and not report_timeouts:
        return
    if limit is not None:
        supervisor.open_proc_files()
    from ..instruments.watchdog import Watchdog

    reports = supervisor.watchdog_reports = WatchdogReports(supervisor, limit)
    report_lead_ms = 0
    on_report = None
    if report_timeouts:
        report_lead_ms, on_report = TIMEOUT_LEAD_MS, reports.on_timeout_report
    supervisor.watchdog = Watchdog(
        warning_ms, limit, reports.on_timeout_warning, reports.on_memory_warning, report_lead_ms, on_report,
    )


def memory_limit_bytes(pct: int) -> int | None:
    raw = os.environ.get(aws.FUNCTION_MEMORY_SIZE, "")
    try:
        size_mb = int(raw)
    except ValueError:
        message = f"the memory warning is off: {aws.FUNCTION_MEMORY_SIZE}={raw!r} is not a number"
        emit("warning", "instrument_failed", message, feature="the memory warning")
        return None
    return size_mb * 1024 * 1024 * pct // 100


class WatchdogReports:
    """The watchdog's callbacks (run on its thread) and the memory check at the handler's
    return (on the handler's thread)."""

    def __init__(self, supervisor: Supervisor, memory_limit_bytes: int | None) -> None:
        self.supervisor = supervisor
        self.memory_limit_bytes = memory_limit_bytes

    def on_timeout_warning(self, request_id: str, thread_id: int, left_ms: float) -> None:
        from ..instruments.stacks import thread_stack

        stack = thread_stack(thread_id, self.supervisor.handler_code)
        message = f"the handler is still running {left_ms:.0f} ms before its deadline"
        self._warn("timeout", request_id, message, stack=stack, remainingMs=round(left_ms))

    def on_timeout_report(self, armed: Armed) -> None:
        """The self source reports the invocation as timed out before the platform kills it."""
        supervisor = self.supervisor
        reporter, extension = supervisor.self_reporter, supervisor.extension
        if reporter is None or extension is None:
            return
        duration_ms = (armed.deadline_s - reporter.started_epoch_s) * 1000.0
        measured = reporter.record_maker().measured(armed.request_id, duration_ms, None, timed_out=True)
        supervisor.submit_self_records(extension, reporter, measured)
        if supervisor.in_flight is not None:
            supervisor.in_flight.end()  # reported: the next Init must not count its death again
        extension.flush()

    def on_memory_warning(self, request_id: str, rss: int, limit: int) -> None:
        pct = self.supervisor.settings.memory_warning_pct
        message = f"RSS {mib(rss)} MB crossed {pct}% of the function's memory ({mib(limit)} MB)"
        self._warn("memory", request_id, message, rssMB=mib(rss), limitMB=mib(limit))

    def memory_check_after_the_fact(self, armed: Armed) -> None:
        # A spike between two samples still shows in the peak, reset at the start.
        limit = self.memory_limit_bytes
        if limit is None:
            return
        # The lifetime peak bounds this invocation's: while it is below the limit, /proc
        # need not be read (getrusage costs a fraction of it).
        lifetime_mb = lifetime_peak_rss_mb()
        if lifetime_mb is not None and (lifetime_mb + 1) * 1024 * 1024 <= limit:
            return
        supervisor = self.supervisor
        status = self_status(supervisor.proc_status)
        if status is None:
            peak = rss_bytes() or 0
        else:
            # Not the lifetime peak where it cannot be reset: one spike would warn on every
            # later invocation.
            rss, high_water, _ = status
            peak = high_water if supervisor.peak_reset is not None else rss
        if peak >= limit and armed.claim_memory_warning():
            self.on_memory_warning(armed.request_id, peak, limit)

    def _warn(self, kind: str, request_id: str, message: str, **fields: object) -> None:
        emit("warning", f"{kind}_warning", message, requestId=request_id, **fields)
        extension = self.supervisor.extension
        if extension is None:
            return
        record: dict[str, object] = {"kind": kind, "requestId": request_id, "message": message, **fields}
        extension.submit(own_event(WARNING, record, request_id))
        # Export now: if the platform kills the runtime next, this is what survives.
        extension.flush()
