"""The in-process supervisor: what runs inside the function's runtime process.

``entry`` is the handler Lambda calls (the wrapper points ``_HANDLER`` at it); it
loads the user's handler with the runtime's own error semantics, starts the
extension and wraps every invocation. This module is the rest: SIGTERM handling, loading
the user's handler, the wrapper around it, and the supervisor that wires settings,
extension, instruments and handler together.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from .. import aws
from ..instruments import CURRENT as invocation_context
from ..instruments import (
    ENDED_THREADS,
    HOLD,
    IMPORT_PROFILE,
    INIT,
    SELF,
    ColdStartTracker,
    InitTimeline,
    InvocationRecord,
    SelfReporter,
    SourceArbiter,
    choose_source,
    open_self_proc,
    own_event,
    reset_peak_rss,
)
from ..settings import Handover, Settings, emit, emit_once
from ..telemetry import TelemetryEvent

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from types import CodeType, FrameType
    from typing import Any, Protocol

    from ..export import InFlightMarker
    from ..extension import InternalExtension
    from ..instruments.import_profile import ImportProfile
    from ..instruments.process import ProcessMetrics
    from ..instruments.self_records import Measured
    from ..instruments.watchdog import Watchdog, WatchdogReports

    Handler = Callable[[Any, Any], Any]

    class InvocationObserver(Protocol):
        def invocation_started(self, request_id: str, deadline_ms: int | None) -> None: ...

        def invocation_finished(
            self, request_id: str, duration_ms: float, error: BaseException | None
        ) -> None: ...
else:
    # The C module: the ``signal`` wrapper's enums cost ~0.5 ms of Init and only wrap
    # the same numbers (its SIG_DFL equals _signal's 0).
    import _signal as signal


# == shutdown ==============================================================================
# See SIGTERM in both awslambdaric modes, and flush before the process dies.
#
# Lambda sends SIGTERM (then SIGKILL 500 ms later) when an internal extension is
# registered. On Python 3.12+ runtimes awslambdaric polls ``/next`` from a worker
# thread, so a Python signal handler runs on the main thread. On 3.10/3.11 the main
# thread sits inside awslambdaric's C client and a Python handler never runs; but the
# interpreter's C-level handler still writes the signal number to the wakeup fd, and
# the extension's listener thread watches that fd. Whichever path notices first runs
# the (idempotent) shutdown flush.


def install_sigterm_flush(
    flush: Callable[[float], None], watch_fd: Callable[[int, Callable[[bytes], None]], None]
) -> Callable[[], None] | None:
    """Install the SIGTERM hooks; must run on the main thread. Returns what undoes them
    (on the main thread too), or None if they could not be installed."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        return _chain_only(flush, previous)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_fd)
        os.close(write_fd)
        return None
    if old_fd != -1:
        # Someone else owns the wakeup fd; give it back and rely on the handler alone.
        signal.set_wakeup_fd(old_fd)
        os.close(read_fd)
        os.close(write_fd)
    else:
        # Not on the listener's own thread: the platform may still be delivering the
        # last batches, and only the listener can receive them.
        def on_wakeup(signals: bytes) -> None:
            # The wakeup fd carries every signal with a Python handler (the function's
            # SIGALRM timer as well): only SIGTERM ends the environment. The flush gets
            # the time the signal was seen here, as its thread may start late.
            if signal.SIGTERM in signals:
                seen_at = time.monotonic()
                threading.Thread(target=flush, args=(seen_at,), name="lambda-wrapper-shutdown").start()

        watch_fd(read_fd, on_wakeup)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        flush(time.monotonic())
        # Then die the way we would have without a handler.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)

    def undo() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if old_fd == -1:
            signal.set_wakeup_fd(-1)

    return undo


def _chain_only(flush: Callable[[float], None], previous: Any) -> Callable[[], None]:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        flush(time.monotonic())
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)

    def undo() -> None:
        signal.signal(signal.SIGTERM, previous)

    return undo


# == handler loader ========================================================================
# Load the user's handler exactly as awslambdaric would.
#
# Every init failure (missing module, syntax error, exception at import, missing
# function, malformed handler name) must reach the caller with the same ``errorType``
# and ``errorMessage`` as without the wrapper. The surest way is to let awslambdaric's
# own loader do it: we are being imported *by* that loader, so it is already loaded,
# and its ``FaultException`` passes through our import unchanged.
#
# An exception raised by the user's module itself must also reach the caller with the
# bare runtime's ``stackTrace``: awslambdaric builds it from the traceback, which would
# show our frames (entry, this module) and a second import chain. So such an
# exception is turned into the error document awslambdaric would have built from the
# traceback below our frames, carried by a ``FaultException``, which awslambdaric
# reports as it stands.


def load_user_handler(name: str | None) -> Handler:
    ric = sys.modules.get("awslambdaric.bootstrap")
    # What goes wrong is told by ``handler_faults``, loaded only then.
    if name is None or not name.strip():
        from .handler_faults import fault

        raise fault(ric, "MALFORMED_HANDLER_NAME",
                    "Bad handler '': LAMBDA_WRAPPER_HANDLER is not set (the wrapper stores the original "
                    "_HANDLER there)")
    loader = getattr(ric, "_get_handler", None)
    if loader is None:
        from .handler_faults import load_without_awslambdaric

        return load_without_awslambdaric(name)
    try:
        return loader(name)
    except Exception as error:
        from .handler_faults import fault_as_reported_without_us

        reported = fault_as_reported_without_us(ric, error)
        if reported is None:
            raise
        raise reported from None


# == handler wrapper =======================================================================
# Tell the supervisor when each invocation starts and ends, adding one Python frame and nothing else.
#
# The handler's return value, exceptions (``SystemExit`` included) and their types pass
# through untouched. awslambdaric drops the leading frames of a function error's
# ``stackTrace`` whose file is a ``bootstrap.py`` (the runtime's own): the wrapper's frame
# is attributed to one (``RUNTIME_FRAME_FILE``, beside this module), so it is dropped the
# same way and the caller and the logs see exactly the traceback they would see without
# us. A file name, not a module of that name: a module costs every Init about 0.34M
# instructions just to exist. Tracebacks that keep the frame still show its source lines,
# which ``traceback`` reads through this module's loader.


def wrap_handler(user_handler: Handler, observer: InvocationObserver) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        request_id = getattr(context, "aws_request_id", "")
        # awslambdaric's own context first, without a call: this runs on every invocation.
        deadline = getattr(context, "_epoch_deadline_time_in_ms", None)
        if type(deadline) is not int:
            deadline = _deadline_ms(context)
        observer.invocation_started(request_id, deadline)
        started = time.perf_counter()
        # The error is passed on, never kept in a local: a frame holding the exception
        # that holds its traceback (and so the frame) is a cycle, and it would keep the
        # user's event and locals alive until the next full garbage collection.
        try:
            result = user_handler(event, context)
        except BaseException as error:
            observer.invocation_finished(request_id, (time.perf_counter() - started) * 1000.0, error)
            raise
        observer.invocation_finished(request_id, (time.perf_counter() - started) * 1000.0, None)
        return result

    handler.__wrapped__ = user_handler  # type: ignore[attr-defined]
    return handler


RUNTIME_FRAME_FILE = os.path.join(os.path.dirname(__file__), "bootstrap.py")
# Once, at import: every handler ``wrap_handler`` makes then runs code attributed to that file.
wrap_handler.__code__ = wrap_handler.__code__.replace(co_consts=tuple(
    const.replace(co_filename=RUNTIME_FRAME_FILE) if isinstance(const, type(wrap_handler.__code__)) else const
    for const in wrap_handler.__code__.co_consts
))


def _deadline_ms(context: Any) -> int | None:
    """The deadline of a context other than awslambdaric's (whose own attribute, the
    deadline header as it came, ``handler`` reads first): rather than two clock readings
    and a call to get it back from the time remaining, an attribute that holds it."""
    deadline = getattr(context, "_deadline_ms", None)
    if isinstance(deadline, int):
        return deadline
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return int(time.time() * 1000) + int(remaining())
    return None


# == core ==================================================================================
# Wire settings, extension, instruments and handler together; never let any of it break Init.
#
# The supervisor is the ``InvocationObserver`` of the wrapped handler. Around each
# invocation it runs the instruments that are switched on, submits the toolkit's own
# records to the extension and, last, tells the extension the handler is done, so
# everything the instruments submitted is in that invocation's flush.
#
# Only small modules are imported on the default path; structlog, psutil and the
# other optional instruments are imported by ``start_instruments`` when their feature
# is on. An instrument that fails is switched off with one diagnostic line; the
# function keeps running.


# Where this process's per-invocation records come from (the self report in ``instruments``):
# None until the extension has started; doctor reports it.
TELEMETRY_SOURCE: str | None = None


# While the extension's phase one runs beside the handler import, its thread needs the
# GIL after each reply (register, subscribe) and at its listener's start, and at the
# end of Init its event loop needs it to send the first /event/next; at the default
# interval (5 ms) the main thread keeps it that long each time and Init ends waiting.
# The interval is restored as the first invocation starts, before the handler runs.
PHASE_ONE_SWITCH_INTERVAL_S = 0.0002


class Supervisor:
    def __init__(self, settings: Settings, timeline: InitTimeline | None = None) -> None:
        self.settings = settings
        self.timeline = timeline or InitTimeline(time.perf_counter())
        self.extension: InternalExtension | None = None
        self.cold_start = ColdStartTracker(self.timeline)
        # The invocation running now, as the handler's thread measures it.
        self.invocation = InvocationRecord()
        self.process_metrics: ProcessMetrics | None = None
        self.watchdog: Watchdog | None = None
        self.import_profile: ImportProfile | None = None
        # The watchdog's callbacks and the memory check at return, where it runs.
        self.watchdog_reports: WatchdogReports | None = None
        # Our handler wrapper's code: stacks in warnings start below it.
        self.handler_code: CodeType | None = None
        # /proc/self/status and clear_refs, kept open for the features that read memory
        # on every invocation (``instruments``: procfs); clear_refs only where the peak can
        # be reset per invocation (else it is the lifetime peak).
        self._proc_opened = False
        self.proc_status: int | None = None
        self.peak_reset: int | None = None
        # Where per-invocation records come from (the self report in ``instruments``), known once
        # the subscription's outcome is.
        self.telemetry_source = "platform"
        self.self_reporter: SelfReporter | None = None
        # The self reporter's amendment of each invocation record (bound once).
        self._add_self_records: Callable[[list[TelemetryEvent]], None] | None = None
        self.in_flight: InFlightMarker | None = None
        # Made while phase one waits on the platform (``make_in_flight_marker_early``), or
        # why it could not be; adopted or discarded once the source is chosen.
        self._early_in_flight: InFlightMarker | OSError | None = None
        self._undo_sigterm_flush: Callable[[], None] | None = None
        self._interval_before_phase_one: float | None = None

    @property
    def invocations(self) -> int:
        return self.cold_start.invocations

    # -- InvocationObserver -------------------------------------------------------------
    # Both run on the handler's path: an instrument's failure is one line, never the
    # function's. The extension calls come last so our records are in its flush. What
    # the invocation record says is stored in ``self.invocation`` and made into the
    # record off the handler's path (``InvocationRecord``).
    def invocation_started(self, request_id: str, deadline_ms: int | None) -> None:
        invocation = self.invocation = InvocationRecord()
        invocation.begun = time.perf_counter()
        invocation.ended = None
        invocation.thread_id = thread_id = threading.get_ident()
        if ENDED_THREADS:
            self.keep_threads_alive()
        # The instruments, inline: calls cost most on this path, where caches are cold.
        try:
            now = time.time()  # the one wall-clock reading of the start, for every instrument
            cold_start = self.cold_start
            cold_start.invocation_starts(now)
            invocation_context.invocation_starts(request_id, cold_start.cold_start)
            if cold_start.invocations == 1:
                self._first_invocation_starts(request_id)
            if self.self_reporter is not None:
                self.self_reporter.started_epoch_s = now
                if self.in_flight is not None:
                    self.in_flight.begin(request_id, now)
            if self.peak_reset is not None:
                reset_peak_rss(self.peak_reset)
            if self.process_metrics is not None:
                self.process_metrics.invocation_starts()
            if self.watchdog is not None:
                self.watchdog.arm(request_id, deadline_ms, thread_id, now)
        except Exception as exc:
            emit_once("warning", "instruments_failed", f"an instrument failed: {exc!r}")
        if self.extension is not None:
            self.extension.handler_started(request_id)
        invocation.paused = time.perf_counter()

    def invocation_finished(self, request_id: str, duration_ms: float, error: BaseException | None) -> None:
        invocation = self.invocation
        invocation.resumed = time.perf_counter()
        # Again at the end: a listener that died during the handler must be back before
        # the platform posts this invocation's runtimeDone and report.
        if ENDED_THREADS:
            self.keep_threads_alive(watchdog=False)
        extension = self.extension
        submitted = False
        try:
            reported_timed_out = False
            if self.watchdog is not None:
                armed = self.watchdog.disarm()
                reports = self.watchdog_reports
                if (armed is not None and reports is not None and reports.memory_limit_bytes is not None
                        and not armed.memory_fired):
                    reports.memory_check_after_the_fact(armed)
                # The self source's timeout report went out first: it stands.
                reported_timed_out = (armed is not None and armed.report_at is not None
                                      and not armed.claim_end())
            if self.in_flight is not None:
                self.in_flight.end()
            if extension is not None:
                invocation.request_id = request_id
                invocation.cold_start = self.cold_start.cold_start
                invocation.proactive_init = self.cold_start.proactive_init
                invocation.handler_ms = duration_ms
                invocation.error_type = type(error).__name__ if error is not None else None
                invocation.process = None
                if self.process_metrics is not None or self.import_profile is not None:
                    self._optional_records(extension, invocation, request_id)
                invocation.ended_epoch_s = time.time()
                invocation.submitted = time.perf_counter()
                # The self records are made from the invocation record, on the flush's thread.
                extension.submit(invocation, None if reported_timed_out else self._add_self_records)
                submitted = True
        except Exception as exc:
            emit_once("warning", "instruments_failed", f"an instrument failed: {exc!r}")
        if extension is not None:
            extension.handler_finished(request_id)
        if submitted:
            # Last: WrapperOverhead covers queueing the record and the signal.
            invocation.ended = time.perf_counter()

    def keep_threads_alive(self, watchdog: bool = True) -> None:
        """Start again whichever of our threads died (an exception raised into it, say):
        the extension's event loop and listener (``InternalExtension.ensure_running``)
        and the watchdog. This is the one place that knows which threads must live; the
        handler's path calls it only when a flagged thread has ended
        (``instruments.ENDED_THREADS``). ``watchdog=False`` when the handler has
        returned: the watchdog's next work is the next invocation's, checked as it
        starts, and the ended threads stay listed until then."""
        try:
            if watchdog:
                del ENDED_THREADS[:]  # before the flags are read: a thread ending now stays listed
            if self.extension is not None:
                self.extension.ensure_running()
            if watchdog and self.watchdog is not None and self.watchdog.ensure_running():
                emit("warning", "watchdog_restarted", "the watchdog had stopped; restarted")
        except Exception as exc:  # e.g. no thread can be started: the function runs on
            emit_once("warning", "restart_failed", f"a thread of ours could not restart: {exc!r}")

    def _first_invocation_starts(self, request_id: str) -> None:
        self._restore_switch_interval()
        if self.extension is not None:
            # At the start, not the end: a first invocation that times out still reports its Init.
            init = self.timeline.record(self.cold_start.cold_start, self.cold_start.proactive_init)
            self.extension.submit(own_event(INIT, init, request_id))

    # -- records ------------------------------------------------------------------------
    def _optional_records(
        self, extension: InternalExtension, invocation: InvocationRecord, request_id: str
    ) -> None:
        """What the invocation record and its neighbours get from instruments that are off by default."""
        if self.process_metrics is not None:
            try:
                invocation.process = self.process_metrics.snapshot()
            except Exception as exc:  # the invocation record still goes out
                emit_once("warning", "process_metrics_failed", f"process metrics failed: {exc!r}")
        if self.import_profile is not None:
            self.import_profile.uninstall()
            extension.submit(own_event(IMPORT_PROFILE, self.import_profile.record(), request_id))
            self.import_profile = None

    # -- self records ---------------------------------------------------------------------
    @staticmethod
    def submit_self_records(
        extension: InternalExtension, reporter: SelfReporter, measured: Measured
    ) -> None:
        """Self records outside the invocation record's submit (a timeout, a death)."""
        request_id = measured.request_id
        carrier = own_event("platform.report", {"requestId": request_id, "source": "self"}, request_id)
        extension.submit(carrier, reporter.record_maker().amendment(measured, replace=True))

    # -- start-up -------------------------------------------------------------------------
    def start_extension(self) -> None:
        """Build the pipeline and start the extension's phase one (``InternalExtension.begin``)
        on its own thread; ``finish_extension_start`` waits for its outcome."""
        try:
            from ..export import Pipeline, build_exporters, telemetry_types
            from ..extension import InternalExtension

            mark = self.timeline.mark
            mark("extensionImported")
            exporters = build_exporters(self.settings)
            spool_root = os.path.join(aws.wrapper_tmp_dir(), "spool")
            pipeline = Pipeline(
                exporters,
                spool_root,
                self.settings.spool_max_bytes,
                emf_namespaces={self.settings.emf_namespace},
            )
            types = telemetry_types(self.settings, exporters)
            extension = InternalExtension(self.settings, pipeline, types, mark)
            mark("pipelineBuilt")
            # Before the listener's thread starts (it watches the wakeup fd the hooks set).
            hooks = install_sigterm_flush(extension.shutdown_flush, extension.listener.watch_fd)
            self._undo_sigterm_flush = hooks
            self._interval_before_phase_one = sys.getswitchinterval()
            sys.setswitchinterval(PHASE_ONE_SWITCH_INTERVAL_S)
            extension.begin()
            self.extension = extension
            mark("extensionStarted")
        except Exception as exc:
            self._drop_extension()
            emit("warning", "extension_failed", f"the extension could not start: {exc!r}")

    def finish_extension_start(self) -> None:
        """Once the handler is imported: wait for the extension's phase one, choose where
        per-invocation records come from, then let its event loop start (phase two).
        Init ends only once both threads wait on the platform, so what does not depend on
        phase one's outcome is done before the wait, while its thread waits on sockets."""
        extension = self.extension
        if extension is None:
            return
        self.make_in_flight_marker_early()
        registered = extension.registered()
        self.timeline.mark("extensionJoined")
        if not registered:  # phase one said why
            self._drop_extension()
            return
        try:
            self._choose_telemetry_source(extension)
        except Exception as exc:  # the platform's records only; the extension runs on
            emit("warning", "extension_failed", f"the telemetry source could not be chosen: {exc!r}")
        self._discard_early_in_flight_marker()
        self.timeline.mark("sourceChosen")
        # Registered: the platform ends Init only once the event loop asks for its next event.
        try:
            extension.release()
        except Exception as exc:  # released first: only an exporter's preparation failed
            emit("warning", "extension_failed", f"the exporters could not prepare: {exc!r}")
        self.timeline.mark("extensionReleased")

    def _restore_switch_interval(self) -> None:
        previous, self._interval_before_phase_one = self._interval_before_phase_one, None
        # Unless the function's import set one of its own.
        # (The interpreter keeps whole microseconds: compare to within one.)
        if previous is not None and abs(sys.getswitchinterval() - PHASE_ONE_SWITCH_INTERVAL_S) < 1e-6:
            sys.setswitchinterval(previous)

    def make_in_flight_marker_early(self) -> None:
        """The in-flight marker, made while the extension's thread waits on the platform
        instead of after: its file and the cgroup read are ~1 ms of Init's critical path.
        Only where every subscription outcome leads to a source that keeps one
        (``_choose_telemetry_source``); elsewhere it is made once the outcome is known."""
        from ..extension import managed_instances

        setting = self.settings.telemetry_source
        if setting != SELF and (setting != "auto" or managed_instances()):
            return
        try:
            self._early_in_flight = self._new_in_flight_marker()
        except OSError as exc:  # said once the source is chosen, as a marker made then would
            self._early_in_flight = exc

    def _in_flight_marker(self) -> InFlightMarker:
        early, self._early_in_flight = self._early_in_flight, None
        if isinstance(early, OSError):
            raise early
        if early is not None:
            return early
        return self._new_in_flight_marker()

    @staticmethod
    def _new_in_flight_marker() -> InFlightMarker:
        from ..export import InFlightMarker

        return InFlightMarker(os.path.join(aws.wrapper_tmp_dir(), "in-flight"))

    def _discard_early_in_flight_marker(self) -> None:
        """A marker made early that no source took: its file goes, so that the next Init
        in this environment does not read it as a dead process's."""
        early, self._early_in_flight = self._early_in_flight, None
        if early is not None and not isinstance(early, OSError):
            try:
                early.discard()
            except OSError:
                pass

    def _drop_extension(self) -> None:
        self._discard_early_in_flight_marker()
        self._restore_switch_interval()
        self.extension = None
        undo, self._undo_sigterm_flush = self._undo_sigterm_flush, None
        if undo is not None:
            undo()

    def _choose_telemetry_source(self, extension: InternalExtension) -> None:
        """Once the subscription's outcome is known (the self report in ``instruments`` says how)."""
        from ..extension import managed_instances

        global TELEMETRY_SOURCE
        setting = self.settings.telemetry_source
        outcome = extension.subscription
        state = outcome.state if outcome is not None else None
        if setting == "platform" or (setting == "auto" and state is None and managed_instances()):
            TELEMETRY_SOURCE = "platform"  # and nothing more is set up
            return
        source = choose_source(setting, state, managed_instances())
        arbiter = SourceArbiter(source)
        extension.pipeline.arbiter = arbiter
        reporter = self.self_reporter = SelfReporter(self.timeline, self.cold_start, arbiter)
        if source == SELF:
            reporter.record_maker()  # records for every invocation: their maker loads now, at Init
        self._add_self_records = reporter.add_records
        self.telemetry_source = TELEMETRY_SOURCE = source
        try:
            marker = self._in_flight_marker()
            for request_id, started, out_of_memory in marker.recover_orphans():
                measured = reporter.record_maker().died_in_flight(request_id, started, out_of_memory)
                self.submit_self_records(extension, reporter, measured)
            self.in_flight = marker
        except OSError as exc:
            emit("warning", "instrument_failed", f"the in-flight marker is off: {exc!r}",
                             feature="the in-flight marker")
        if source != HOLD:  # the usual case on Lambda goes without a line
            emit("info", "telemetry_source", f"per-invocation records: {source}",
                             source=source, subscription=state)

    def start_import_profile(self) -> None:
        """Before everything else we import, so our own cost shows in the profile too."""
        settings = self.settings
        if settings.import_profile and settings.feature_enabled("the import profile"):
            self._start("the import profile", self._import_profile)

    def start_instruments(self) -> None:
        """Switch on what the settings ask for, before the user's handler is imported."""
        settings = self.settings
        if settings.logs == "structlog" and settings.feature_enabled("structured logs"):
            self._start("structured logs", self._structured_logs)
        if settings.process_metrics and settings.feature_enabled("process metrics"):
            self._start("process metrics", self._process_metrics)
        if settings.instrument and settings.feature_enabled("call instrumentation"):
            self._start("call instrumentation", self._call_instrumentation)

    def start_watchdog(self) -> None:
        """Once the handler is imported and the telemetry source is known: whether the
        watchdog also reports timeouts depends on it. Where neither warning is on and the
        platform reports timeouts, no watchdog: its module is not even loaded."""
        settings = self.settings
        report_timeouts = self.self_reporter is not None and self.telemetry_source == "self"
        if settings.timeout_warning_ms or settings.memory_warning_pct or report_timeouts:
            self._start("the watchdog", lambda: self._watchdog(report_timeouts))

    def _start(self, feature: str, start: Callable[[], None]) -> None:
        try:
            start()
        except Exception as exc:
            emit(
                "warning",
                "instrument_failed",
                f"{feature} could not start and is off: {exc!r}",
                feature=feature,
            )

    def _import_profile(self) -> None:
        from ..instruments.import_profile import ImportProfile

        profile = ImportProfile(self.settings.import_profile)
        if profile.install():
            self.import_profile = profile
        else:
            message = "the import profile is off: this Python has no importlib._bootstrap._find_and_load"
            emit("warning", "instrument_failed", message, feature="the import profile")

    def _structured_logs(self) -> None:
        from ..instruments import logs

        json_format = os.environ.get(aws.LOG_FORMAT, "").upper() == "JSON"
        logs.install(json_format, os.environ.get(aws.LOG_LEVEL))

    def _process_metrics(self) -> None:
        from ..instruments.process import ProcessMetrics

        self.open_proc_files()
        self.process_metrics = ProcessMetrics(self.proc_status)

    def open_proc_files(self) -> None:
        if not self._proc_opened:
            self._proc_opened = True
            self.proc_status, self.peak_reset = open_self_proc()

    def _call_instrumentation(self) -> None:
        extension = self.extension
        if extension is None:
            message = "call instrumentation is off: the extension, which exports its spans, is not running"
            emit("warning", "instrument_failed", message, feature="call instrumentation")
            return
        from ..instruments import calls

        propagate = self.settings.instrument_propagate and self.settings.feature_enabled("trace propagation")
        # Spans are own records: queued as objects, serialised off the handler's thread.
        calls.start(self.settings.instrument, self._submit_span, propagate)

    def _submit_span(self, event: TelemetryEvent) -> None:
        # The extension may still turn out not to have registered (``finish_extension_start``).
        extension = self.extension
        if extension is not None:
            extension.submit(event)

    def _watchdog(self, report_timeouts: bool) -> None:
        from ..instruments.watchdog import start_watchdog

        start_watchdog(self, report_timeouts)


def start(started_at: float) -> Handler:
    timeline = InitTimeline(started_at, os.environ, os.environ.get(aws.INITIALIZATION_TYPE))
    settings = Settings(os.environ)
    for problem in settings.problems:
        emit("warning", "invalid_setting", problem.describe(), variable=problem.name)
    if settings.strict and settings.problems:
        names = ", ".join(problem.name for problem in settings.problems)
        from ..variables import InvalidSettingsError  # loaded: a variable of ours is set

        raise InvalidSettingsError(f"invalid lambda-wrapper settings (LAMBDA_WRAPPER_STRICT=true): {names}")
    supervisor = Supervisor(settings, timeline)
    supervisor.start_import_profile()
    if settings.extension_enabled:
        supervisor.start_extension()
    supervisor.start_instruments()
    timeline.handler_import_starts()
    try:
        user_handler = load_user_handler(os.environ.get(Handover.USER_HANDLER))
    finally:
        timeline.handler_import_ends()
        # Registered means the platform waits for our /event/next to end Init,
        # whether or not the handler loaded.
        supervisor.finish_extension_start()
        supervisor.start_watchdog()
    handler = wrap_handler(user_handler, supervisor)
    supervisor.handler_code = getattr(handler, "__code__", None)
    timeline.init_ends()
    return handler
