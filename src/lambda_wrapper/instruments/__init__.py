"""What the supervisor measures about the function and about itself.

This module holds what every Init uses, and imports nothing beyond what awslambdaric
already loaded: memory figures from /proc, the toolkit's own records, the current
invocation's context, cold start and the Init breakdown, the toolkit's own overhead,
the threads the supervisor keeps alive and the self source of per-invocation records.
Each optional instrument is a module of its own, loaded only when its feature is on (see
``docs/instruments.md``), the watchdog thread (``watchdog``) among them; structlog is
imported only by ``logs``, and psutil only by ``process`` where /proc cannot be opened.
"""

from __future__ import annotations

import os
import threading
import time

from .. import aws
from ..settings import Handover
from ..telemetry import TelemetryEvent

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .self_records import SelfRecords


# == procfs ================================================================================
# Memory figures straight from /proc: cheap enough for a watchdog, and no psutil.
#
# Reading ``/proc/self/statm`` costs about 10 µs. The features that read memory on the
# handler's path on every invocation (process metrics, the memory warning) keep their
# files open (``open_self_proc``): opening a /proc file costs more than the kernel takes
# to generate it. ``/proc/self/status`` measured 20-30 µs through ``open`` and about 8 µs
# read again through a descriptor kept open (a read at offset 0 has the kernel generate
# it afresh); writing ``5`` to ``/proc/self/clear_refs`` 7-10 µs against under 1 µs.
#
# That write (Linux 4.0+) resets the peak RSS (``VmHWM``) to the current RSS (the kernel
# only resets a counter: it walks no page tables), which turns the process-lifetime peak
# into a per-invocation one. ``status`` never shows ``VmHWM`` below the ``VmRSS`` beside
# it (the kernel reports the larger), so one read gives the RSS, a peak that covers it,
# and the thread count. Not ``getrusage``'s ``ru_maxrss``: the kernel also folds the
# high-water mark into it whenever a thread exits, and ``clear_refs`` cannot reset that
# part.


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    # Through a bare descriptor: a file object costs as much again as the read.
    try:
        statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return int(os.read(statm, 256).split()[1]) * _PAGE_SIZE
        finally:
            os.close(statm)
    except (OSError, ValueError, IndexError):
        return None


def lifetime_peak_rss_mb() -> int | None:
    """The process's peak RSS since it started (``ru_maxrss``, never reset), whole MiB
    rounded down."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # KiB on Linux
    except (ImportError, OSError, ValueError):
        return None


def open_self_proc() -> tuple[int | None, int | None]:
    """Descriptors of ``/proc/self/status`` (for ``self_status``) and of
    ``/proc/self/clear_refs`` (for ``reset_peak_rss``), close-on-exec, kept by the caller
    for the process's life; the peak is reset once here, and the second is None where
    that is not allowed, the first None where it cannot be read."""
    descriptors: list[int | None] = []
    for path, flags in (("/proc/self/status", os.O_RDONLY), ("/proc/self/clear_refs", os.O_WRONLY)):
        try:
            descriptors.append(os.open(path, flags | os.O_CLOEXEC))
        except OSError:
            descriptors.append(None)
    status, clear_refs = descriptors
    if clear_refs is not None and not reset_peak_rss(clear_refs):
        os.close(clear_refs)
        clear_refs = None
    return status, clear_refs


def self_status(status: int | None) -> tuple[int, int, int] | None:
    """(RSS, peak RSS since the last reset, OS threads) now, sizes in bytes, read through
    a descriptor of ``open_self_proc``."""
    if status is None:
        return None
    try:
        text = os.pread(status, 4096, 0)  # about 1.4 KB
        fields = []
        for name in (b"VmRSS:", b"VmHWM:", b"Threads:"):
            start = text.index(name) + len(name)
            fields.append(int(text[start : text.index(b"\n", start)].rstrip(b" kB")))
    except (OSError, ValueError):
        return None
    rss, peak, threads = fields
    return rss * 1024, peak * 1024, threads


def reset_peak_rss(clear_refs: int) -> bool:
    """Make the peak ``self_status`` reads start again from the current RSS, through a
    descriptor of ``open_self_proc``; False where not allowed."""
    try:
        os.write(clear_refs, b"5")
        return True
    except OSError:
        return False


# == records ===============================================================================
# The toolkit's own records, shaped like Telemetry API events so one pipeline carries both.
#
# The exporters encode exactly these types and fields (``docs/instruments.md``).


INVOCATION = "lambda_wrapper.invocation"
INIT = "lambda_wrapper.init"
IMPORT_PROFILE = "lambda_wrapper.import_profile"
WARNING = "lambda_wrapper.warning"
SPAN = "lambda_wrapper.span"  # one downstream call (instruments.calls)
LOSS = "lambda_wrapper.loss"  # records received but never exported, counted (the export pipeline)


def own_event(
    type_: str, record: dict[str, object], request_id: str | None = None, epoch_s: float | None = None
) -> TelemetryEvent:
    now = time.time() if epoch_s is None else epoch_s
    return TelemetryEvent(iso_time(now), type_, record, epoch_ms=now * 1000.0, request_id=request_id)


# The last second ``iso_time`` formatted, and its text: records come many to a second, and
# ``strftime`` is most of the cost. One tuple, replaced whole, so threads share it safely.
_formatted_second: tuple[int, str] = (-1, "")


def iso_time(epoch_s: float) -> str:
    """``2026-11-26T15:23:59.332Z``, the Telemetry API's own time format."""
    global _formatted_second
    epoch_ms = int(epoch_s * 1000)
    seconds, millis = divmod(epoch_ms, 1000)
    second, text = _formatted_second
    if second != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _formatted_second = (seconds, text)
    return f"{text}.{millis:03d}Z"


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded to the microsecond the clocks can resolve."""
    return round(seconds * 1000.0, 3)


def mib(size_bytes: float) -> float:
    return round(size_bytes / (1024 * 1024), 2)


# == context ===============================================================================
# What log lines and the public logger helper know about the current invocation.
#
# The supervisor updates ``CURRENT`` as each invocation starts; readers take the
# values at the moment they log, so a logger created at import time still names the
# invocation it logs in. Python runtimes run one invocation at a time per process
# (Managed Instances run several processes), so one module-level object is enough.


class InvocationContext:
    __slots__ = ("_xray_trace_id", "_xray_trace_read", "cold_start", "function_name", "function_version",
                 "request_id")

    def __init__(self) -> None:
        self.function_name = os.environ.get(aws.FUNCTION_NAME)
        self.function_version = os.environ.get(aws.FUNCTION_VERSION)
        self.request_id: str | None = None
        self.cold_start: bool | None = None
        self._xray_trace_id: str | None = None
        self._xray_trace_read = True

    def invocation_starts(self, request_id: str, cold_start: bool) -> None:
        self.request_id = request_id or None
        self.cold_start = cold_start
        # Read on first use: only log lines want it, and the handler's path pays for
        # nothing it does not use.
        self._xray_trace_read = False

    @property
    def xray_trace_id(self) -> str | None:
        """The invocation's X-Ray trace id: awslambdaric sets _X_AMZN_TRACE_ID from the
        invoke's header before calling us."""
        if not self._xray_trace_read:
            self._xray_trace_id = xray_root(os.environ.get(aws.TRACE_ID))
            self._xray_trace_read = True
        return self._xray_trace_id

    def fields(self) -> dict[str, object]:
        """The context as log fields, named like Lambda's own JSON log format (``requestId``)."""
        values = {
            "requestId": self.request_id,
            "functionName": self.function_name,
            "functionVersion": self.function_version,
            "coldStart": self.cold_start,
            "xrayTraceId": self.xray_trace_id,
        }
        return {key: value for key, value in values.items() if value is not None}


def xray_root(header: str | None) -> str | None:
    """``1-5bef4de7-ad49b0e87f6ef6c87fc2e700`` from ``Root=1-5bef...;Parent=...;Sampled=1``."""
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


CURRENT = InvocationContext()


# == cold start ============================================================================
# Cold start, proactive initialisation, and where the Init time went.
#
# ``coldStart`` is true on the first invocation of each environment, unless the
# environment was initialised ahead of traffic:
#
# - provisioned concurrency and Lambda Managed Instances initialise before any
#   request is routed to them;
# - Lambda also initialises on-demand environments proactively. Like Datadog, we call
#   an Init that ended more than 10 s before the first invocation proactive: no caller
#   waited for it.
#
# SnapStart restores are cold starts (the restore is on the caller's path), even
# though our own Init ran long before, when the snapshot was taken.
#
# The breakdown splits Init into the wrapper script (from its two ``$EPOCHREALTIME``
# stamps; absent where the shell has no such clock), the interpreter and runtime
# start-up before our first line (``runtimeStartMs``), our own work (settings,
# extension, instruments: ``extensionInitMs``) and the import of the user's handler.


PROACTIVE_INIT_GAP_S = 10.0
INITIALISED_AHEAD = (aws.PROVISIONED_CONCURRENCY, aws.MANAGED_INSTANCES)


class InitTimeline:
    """Timestamps of the Init phase: ``perf_counter`` for durations, wall clock for gaps."""

    def __init__(
        self, started_perf: float, environ: Mapping[str, str] | None = None, init_type: str | None = None
    ) -> None:
        environ = environ or {}
        self.init_type = init_type or aws.ON_DEMAND
        self.wrapper_started = _epoch_seconds(environ.get(Handover.STARTED_AT))
        self.wrapper_exec = _epoch_seconds(environ.get(Handover.EXEC_AT))
        self.started_perf = started_perf
        self.started_wall = time.time() - (time.perf_counter() - started_perf)
        self.rss_at_start = rss_bytes()
        self.rss_before_handler: int | None = None
        self.handler_import_started = 0.0
        self.handler_import_ended = 0.0
        self.ended_perf = 0.0
        self.ended_wall = 0.0
        # When each step of Init ended (``mark``), on whichever thread ran it.
        self.phases: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        """``phase`` ended now (its first end counts): the record's ``phasesMs``."""
        if phase not in self.phases:
            self.phases[phase] = time.perf_counter()

    def handler_import_starts(self) -> None:
        self.rss_before_handler = rss_bytes()
        self.handler_import_started = time.perf_counter()

    def handler_import_ends(self) -> None:
        self.handler_import_ended = time.perf_counter()

    def init_ends(self) -> None:
        self.ended_perf = time.perf_counter()
        self.ended_wall = time.time()

    def phases_ms(self) -> dict[str, float]:
        """Each step's end in ms since the entry module started, in the order they ended;
        the handler's import and the end of our part of Init among them."""
        ends = dict(self.phases)
        if self.handler_import_started:
            ends["handlerImportStarted"] = self.handler_import_started
            ends["handlerImported"] = self.handler_import_ended
        if self.ended_perf:
            ends["initEnded"] = self.ended_perf
        in_order = sorted(ends.items(), key=lambda item: item[1])
        return {name: ms(at - self.started_perf) for name, at in in_order}

    def record(self, cold_start: bool, proactive_init: bool) -> dict[str, object]:
        """The ``lambda_wrapper.init`` record."""
        handler_import = self.handler_import_ended - self.handler_import_started
        own = (self.ended_perf - self.started_perf) - handler_import
        wrapper_ms = runtime_start_ms = None
        if self.wrapper_started is not None and self.wrapper_exec is not None:
            wrapper_ms = ms(max(0.0, self.wrapper_exec - self.wrapper_started))
            runtime_start_ms = ms(max(0.0, self.started_wall - self.wrapper_exec))
        own_rss = None
        if self.rss_at_start is not None and self.rss_before_handler is not None:
            own_rss = mib(max(0, self.rss_before_handler - self.rss_at_start))
        return {
            "wrapperInitMs": wrapper_ms,
            "runtimeStartMs": runtime_start_ms,
            "extensionInitMs": ms(own),
            "handlerImportMs": ms(handler_import),
            "wrapperRssMB": own_rss,
            "phasesMs": self.phases_ms(),
            "coldStart": cold_start,
            "proactiveInit": proactive_init,
            "initType": self.init_type,
        }


class ColdStartTracker:
    """Answers, once per invocation, whether it was a cold start."""

    def __init__(self, timeline: InitTimeline) -> None:
        self.timeline = timeline
        self.invocations = 0
        self.cold_start = False
        self.proactive_init = False

    def invocation_starts(self, now_wall: float) -> None:
        self.invocations += 1
        if self.invocations == 1:
            self.cold_start, self.proactive_init = classify_first_invocation(
                self.timeline.init_type, now_wall - self.timeline.ended_wall
            )
        else:
            self.cold_start = self.proactive_init = False

    @property
    def first(self) -> bool:
        return self.invocations == 1


def classify_first_invocation(init_type: str, gap_s: float) -> tuple[bool, bool]:
    """(cold start, proactive init) for the first invocation of an environment."""
    if init_type in INITIALISED_AHEAD:
        return False, True
    if init_type == aws.SNAP_START:
        return True, False
    if gap_s > PROACTIVE_INIT_GAP_S:
        return False, True
    return True, False


def _epoch_seconds(raw: str | None) -> float | None:
    # bash prints $EPOCHREALTIME with the locale's decimal separator.
    if not raw:
        return None
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return None


# == overhead ==============================================================================
# The toolkit's own cost: time added to each invocation, and listener lag.
#
# Our per-invocation time is what the supervisor spends on the handler's thread before
# and after the user's handler (instruments, queueing our records, the signal to the
# extension; the invocation record is made, serialised and spooled later, off that
# thread, by the ``export`` pipeline: ``InvocationRecord``). The
# time the platform then waits for the extension's ``/event/next`` is measured by the
# platform itself (``platform.report`` minus ``platform.runtimeDone``). Init time and
# RSS added at Init are in the ``lambda_wrapper.init`` record (the cold start section).


# How long making the invocation record waits for the final figure, and how often it
# looks: only a flush racing the end of the handler path waits at all, for a few
# microseconds of the supervisor's work.
SETTLE_WAIT_S = 0.05
SETTLE_POLL_S = 0.0001


class InvocationRecord:
    """One invocation as the handler's thread saw it, made into its
    ``lambda_wrapper.invocation`` record by the pipeline when it spools it
    (``to_event``), off the handler's path.

    The handler's thread makes it without a call (no ``__init__``) and only stores
    attributes: clock readings (``perf_counter``) ``begun`` and ``paused`` around the
    supervisor's work before the handler, ``resumed`` after it, ``submitted`` as it is
    queued and, last, ``ended`` once the extension is signalled; ``wrapperOverheadMs`` is
    the time between them, so it covers queueing the record and the signal. The record
    is made once ``ended`` is written: a flush racing the end of the handler path waits
    for it up to ``SETTLE_WAIT_S`` (then takes ``submitted``); one on the handler's own
    thread (a SIGTERM handler) cannot wait for itself and takes ``submitted`` at once.
    """

    __slots__ = ("begun", "cold_start", "ended", "ended_epoch_s", "error_type", "handler_ms", "paused",
                 "proactive_init", "process", "request_id", "resumed", "submitted", "thread_id")

    type = INVOCATION  # what a submitted record is read as before it is made

    begun: float
    paused: float
    resumed: float
    submitted: float
    ended: float | None
    ended_epoch_s: float
    request_id: str
    cold_start: bool
    proactive_init: bool
    handler_ms: float
    error_type: str | None
    process: dict[str, object] | None
    thread_id: int

    def to_event(self, listener_lag_ms: float | None) -> TelemetryEvent:
        """The record, with the pipeline's listener lag as of now (``listenerLagMs``)."""
        ended = self.ended
        if ended is None and threading.get_ident() != self.thread_id:
            give_up = time.monotonic() + SETTLE_WAIT_S
            while ended is None and time.monotonic() < give_up:
                time.sleep(SETTLE_POLL_S)
                ended = self.ended
        if ended is None:
            ended = self.submitted
        overhead_s = self.paused - self.begun + ended - self.resumed
        record: dict[str, object] = {
            "requestId": self.request_id,
            "coldStart": self.cold_start,
            "proactiveInit": self.proactive_init,
            "handlerDurationMs": round(self.handler_ms, 3),
            # To the microsecond, like ``ms``.
            "wrapperOverheadMs": int(overhead_s * 1_000_000.0 + 0.5) / 1000.0,
            "errorType": self.error_type,
        }
        if self.process is not None:
            record["process"] = self.process
        if listener_lag_ms is not None:
            record["listenerLagMs"] = round(listener_lag_ms, 3)
        # No time text: the pipeline writes it from epoch_ms when it spools the record.
        return TelemetryEvent("", INVOCATION, record, epoch_ms=self.ended_epoch_s * 1000.0,
                              request_id=self.request_id)


# == flagged threads =======================================================================
# Our threads the supervisor starts again when they die (an exception raised into one,
# say): the extension's event loop and listener, and the watchdog (``watchdog``). Each
# lowers its flag as it ends, and the handler's path checks one list, not each thread.

# The flags of flagged threads that ended since the supervisor last started again what
# had stopped: one truth test on the handler's path (twice an invocation) tells whether
# any owner needs asking at all.
ENDED_THREADS: list[str] = []


def start_flagged(owner: object, flag: str, target: Callable[[], None], name: str) -> threading.Thread:
    """Start a daemon thread whose liveness ``owner.<flag>`` reads, for a check on the
    handler's path cheaper than ``Thread.is_alive``: raised before the thread runs (a check
    in between must not start a second one), lowered again if it cannot start. The thread
    lowers it itself with ``flag_down``, in a ``finally``, however it ends."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    setattr(owner, flag, True)
    try:
        thread.start()
    except BaseException:
        setattr(owner, flag, False)  # not started: the next check tries again
        raise
    return thread


def flag_down(owner: object, flag: str) -> None:
    """A flagged thread's last act: lower its flag, then add it to ``ENDED_THREADS``."""
    setattr(owner, flag, False)
    ENDED_THREADS.append(flag)


# == self report ===========================================================================
# The self source: per-invocation records from the supervisor's own measurements.
#
# Where the Telemetry API gives nothing (the subscription is refused, as local emulators
# do with a 202, or fails), the supervisor still sees every invocation. It makes the
# records the platform would have sent, with the same types and fields, so every
# exporter and dashboard reads them unchanged, plus ``"source": "self"``
# (``telemetry``'s invocation classifier turns that into the invocation's source):
#
# - ``platform.start``: when the runtime handed us the event.
# - ``platform.runtimeDone`` and ``platform.report``: ``durationMs`` on our clock (from
#   the event to our return), ``status`` (``success``, ``error``, ``timeout``), the
#   ``errorType`` (the exception's type name; ``Runtime.ExitError`` for ``sys.exit``),
#   ``memorySizeMB``, ``maxMemoryUsedMB`` (the process's peak RSS from ``getrusage``,
#   the lifetime peak like the platform's) and, on a cold start, ``initDurationMs`` (from
#   the wrapper script's first line to the end of Init).
#
# What the self source cannot see: billing, the runtime's own overhead before it calls
# us and after we return (``extensionOverhead``, response serialisation: a return value
# that cannot be serialised is a success here), other processes' memory, and a death of
# the process (out of memory, a crash): that invocation is counted at the next Init from
# the spool's in-flight marker (``export.InFlightMarker``).
#
# A timeout is reported before it happens (where self is the source; with a subscription
# the platform reports timeouts and no thread of ours watches for them): the watchdog
# reports the invocation as timed out ``TIMEOUT_LEAD_MS`` before the deadline when the
# handler is still running, and flushes, because the platform kills the process at the
# deadline. If the handler then
# returns after all (within the lead), the timeout report stands and nothing else is
# reported for that invocation.
#
# Source selection (``LAMBDA_WRAPPER_TELEMETRY_SOURCE``), decided once at Init from the
# subscription's outcome, and the guarantee that one invocation is never reported twice:
#
# - ``platform``: no self records.
# - ``self``: self records only; the platform's start, runtimeDone and report records
#   are dropped by the pipeline (``SourceArbiter``).
# - ``auto`` without a subscription: self records only (the platform sends none).
# - ``auto`` with a subscription: each self record is held in memory until the
#   invocation's ``platform.report`` is seen (the self record is dropped) or until
#   ``HOLD_INVOCATIONS`` later invocations went by without it, or the environment shuts
#   down (the self record is exported, and the platform's records of that invocation,
#   should they come later, are dropped).
#
# The handler's thread adds nothing of its own but the in-flight marker's two stores
# into a mapped page (and, where self is the source, arming the watchdog): the records
# are built on the flush's thread (``add_records``, an amendment of the supervisor's
# invocation record) from that record, which already holds the request id, the handler's
# duration, the error type and the cold start; its own time is the invocation's end. With
# a subscription they are built only if they are released. The peak RSS is read when
# they are built: the lifetime peak as of that flush (or release), so a later invocation
# of the same flush interval (``export.policy``) can raise it.


PLATFORM = "platform"
SELF = "self"
HOLD = "hold"  # auto with a subscription: self records wait for the platform's
AUTO = "auto"
SUBSCRIBED = "subscribed"  # extension.SubscriptionOutcome.SUBSCRIBED
HOLD_INVOCATIONS = 3
TIMEOUT_LEAD_MS = 100
INVOCATION_TYPES = frozenset(("platform.start", "platform.runtimeDone", "platform.report"))
MAX_RELEASED = 256


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


class SelfReporter:
    """Turns each invocation into platform-shaped records, off the handler's thread.

    The records are made by ``self_records.SelfRecords`` (``record_maker``), loaded only
    where they are: at Init where self is the source (every invocation's), else the
    first time one is needed (a platform's report that did not come, the watchdog's
    timeout report, a process that died).
    """

    def __init__(
        self, timeline: InitTimeline, cold_start: ColdStartTracker, arbiter: SourceArbiter | None
    ) -> None:
        self.timeline = timeline
        self.cold_start = cold_start
        self.arbiter = arbiter
        self.started_epoch_s = 0.0
        self._maker: SelfRecords | None = None

    def started(self) -> None:
        self.started_epoch_s = time.time()

    def record_maker(self) -> SelfRecords:
        maker = self._maker
        if maker is None:
            from .self_records import SelfRecords

            maker = self._maker = SelfRecords(self)
        return maker

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
                arbiter.hold(invocation.request_id, lambda: self.record_maker().records_of(invocation))
        else:
            events.extend(self.record_maker().records_of(invocation))


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
