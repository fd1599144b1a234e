"""The watchdog: one thread for the process (the timeout warning, the memory warning and
the self source's timeout report), and what it reports for the supervisor.

Loaded only when one of them is on (``Supervisor.start_watchdog``): with the defaults on
Lambda (the platform's records, no warning) no thread of ours watches the handler.
"""

from __future__ import annotations

import os
import threading
import time

from .. import aws
from ..settings import emit
from . import (
    TIMEOUT_LEAD_MS,
    WARNING,
    flag_down,
    lifetime_peak_rss_mb,
    mib,
    own_event,
    rss_bytes,
    self_status,
    start_flagged,
)

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..supervisor import Supervisor

    TimeoutCallback = Callable[[str, int, float], None]  # request id, thread id, ms left
    MemoryCallback = Callable[[str, int, int], None]  # request id, rss, limit
    ReportCallback = Callable[["Armed"], None]  # the invocation to report as timed out


# The supervisor arms it when an invocation starts (with the deadline from the
# runtime's deadline header and the handler's thread) and disarms it when the handler
# returns. Each warning fires at most once per invocation.
#
# Arming and disarming are one attribute assignment each, no lock and usually no
# wake-up: the thread looks at what is armed at least every ``POLL_INTERVAL_S`` (and
# samples RSS then, when the memory warning is on), and is woken early only when a
# warning is due sooner than that. Waking it on every invocation measured about 0.1 ms
# of handler-path time; a poll costs microseconds, and none at all while the
# environment is frozen between invocations.
#
# Callbacks run on this thread, so a slow flush after a warning never holds up the
# handler.
#
# A thread that dies (killed by an exception raised into it) is started again by
# ``ensure_running``, which the supervisor calls as the next invocation starts, beside
# the extension's (the thread's last act lists it in ``ENDED_THREADS``): what was armed
# is picked up by the new thread.
#
# Limit: a handler stuck in C code that holds the GIL keeps this thread from running
# (the same limit as any Python-level watchdog); the platform's timeout report still
# says what happened.



POLL_INTERVAL_S = 0.05
THREAD_NAME = "lambda-wrapper-watchdog"
# One lock for the process: memory warnings are rare (at most once per invocation),
# and arming makes no lock per invocation on the handler path.
_CLAIMS = threading.Lock()


class Armed:
    """One invocation under watch; ``*_fired`` tell which warnings went out."""

    __slots__ = (
        "_end_claim", "deadline_s", "memory_fired", "report_at", "request_id", "thread_id", "timeout_fired",
        "warn_at",
    )

    def __init__(self, request_id: str, thread_id: int, deadline_s: float, warn_at: float | None,
                 report_at: float | None = None) -> None:
        self.request_id = request_id
        self.thread_id = thread_id
        self.deadline_s = deadline_s
        self.warn_at = warn_at
        self.timeout_fired = False
        self.memory_fired = False
        # The self source's timeout report: when it is due, and whether the invocation
        # already ended one way (the handler returned) or the other (reported timed out).
        self.report_at = report_at
        self._end_claim = [True]

    @property
    def ended(self) -> bool:
        return not self._end_claim

    def claim_end(self) -> bool:
        """True for exactly one caller: the handler returning, or the timeout report.

        ``list.pop`` is atomic, so the handler's thread takes no lock for it."""
        try:
            return self._end_claim.pop()
        except IndexError:
            return False

    def claim_memory_warning(self) -> bool:
        """True for exactly one caller: the watchdog's sample and the supervisor's
        check when the handler returns can both see the limit crossed at once."""
        with _CLAIMS:
            if self.memory_fired:
                return False
            self.memory_fired = True
            return True


class Watchdog:
    def __init__(
        self,
        warning_ms: int,
        memory_limit_bytes: int | None,
        on_timeout: TimeoutCallback,
        on_memory: MemoryCallback,
        report_lead_ms: int = 0,
        on_report_timeout: ReportCallback | None = None,
    ) -> None:
        self.warning_s = warning_ms / 1000.0
        self.report_lead_s = report_lead_ms / 1000.0 if on_report_timeout is not None else 0.0
        self.on_report_timeout = on_report_timeout
        self.memory_limit_bytes = memory_limit_bytes
        self.on_timeout = on_timeout
        self.on_memory = on_memory
        self._armed: Armed | None = None
        self._wake = threading.Event()
        # False once the thread's loop has ended, however: ``ensure_running`` reads it on
        # the handler's thread, where ``Thread.is_alive`` measured ~10 us in the sandbox.
        self._looping = False
        self._thread = start_flagged(self, "_looping", self._run, THREAD_NAME)

    def ensure_running(self) -> bool:
        """Start the thread again if it died; True if it had to."""
        if self._looping:
            return False
        self._thread = start_flagged(self, "_looping", self._run, THREAD_NAME)
        return True

    def arm(
        self, request_id: str, deadline_epoch_ms: int | None, thread_id: int, now: float | None = None
    ) -> None:
        """Watch the invocation from ``now`` (the caller's wall clock reading, if it has one)."""
        if deadline_epoch_ms is None or (self.warning_s <= 0 and self.report_lead_s <= 0):
            self._armed = Armed(request_id, thread_id, 0.0, None)
            return
        if now is None:
            now = time.time()
        deadline_s = deadline_epoch_ms / 1000.0
        remaining = deadline_s - now
        warn_at = report_at = None
        due = deadline_s
        if self.warning_s > 0:
            # A warning larger than the whole timeout would fire as the handler
            # starts, on every invocation; warn halfway instead.
            due = warn_at = deadline_s - self.warning_s if self.warning_s < remaining else now + remaining / 2
        if self.report_lead_s > 0:
            lead = self.report_lead_s if self.report_lead_s < remaining / 2 else remaining / 2
            report_at = deadline_s - lead
            due = report_at if report_at < due else due
        self._armed = Armed(request_id, thread_id, deadline_s, warn_at, report_at)
        if due - now < POLL_INTERVAL_S:
            self._wake.set()

    def disarm(self) -> Armed | None:
        """Stop watching; returns what was armed, to see which warnings fired."""
        armed, self._armed = self._armed, None
        return armed

    def _run(self) -> None:
        try:
            while True:
                armed = self._armed  # read once: the handler's thread may replace it any time
                if armed is not None:
                    try:
                        self._check(armed)
                    except Exception:
                        pass  # a failing warning must never kill the watchdog
                self._wake.wait(self._sleep_s(self._armed))
                self._wake.clear()
        finally:  # an exception raised into this thread ends it: say so first thing
            flag_down(self, "_looping")

    def _check(self, armed: Armed) -> None:
        report_at = armed.report_at
        if report_at is not None and not armed.ended and time.time() >= report_at and armed.claim_end():
            assert self.on_report_timeout is not None
            self.on_report_timeout(armed)
        if not armed.timeout_fired and armed.warn_at is not None and time.time() >= armed.warn_at:
            armed.timeout_fired = True
            self.on_timeout(armed.request_id, armed.thread_id, (armed.deadline_s - time.time()) * 1000.0)
        limit = self.memory_limit_bytes
        if limit is not None and not armed.memory_fired:
            rss = rss_bytes()
            if rss is not None and rss >= limit and armed.claim_memory_warning():
                self.on_memory(armed.request_id, rss, limit)

    @staticmethod
    def _sleep_s(armed: Armed | None) -> float:
        sleep = POLL_INTERVAL_S
        if armed is not None and not armed.timeout_fired and armed.warn_at is not None:
            sleep = min(sleep, armed.warn_at - time.time())
        if armed is not None and not armed.ended and armed.report_at is not None:
            sleep = min(sleep, armed.report_at - time.time())
        return max(0.0, sleep)


# == what it reports =======================================================================
# The supervisor's side: which watchdog the settings and the telemetry source ask for, the
# warnings it sends (a line, a record, a flush) and the memory check as the handler returns.


def start_watchdog(supervisor: Supervisor, report_timeouts: bool) -> None:
    """Start the watchdog with what the settings ask of it and ``report_timeouts`` (the
    self source's, decided by ``Supervisor.start_watchdog``), if anything."""
    settings = supervisor.settings
    warning_ms = settings.timeout_warning_ms if settings.feature_enabled("the timeout warning") else 0
    pct = settings.memory_warning_pct if settings.feature_enabled("the memory warning") else 0
    limit = memory_limit_bytes(pct) if pct else None
    if not warning_ms and limit is None and not report_timeouts:
        return
    if limit is not None:
        supervisor.open_proc_files()
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
