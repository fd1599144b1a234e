"""The internal extension's two phases: set up during Init, then run on threads.

Phase one (``register``, main thread, before the user's handler is imported) makes
the two loopback round trips Lambda only accepts during Init: register (closes at the
runtime's first ``/next``, so it must have *returned* by then) and the Telemetry API
subscription (closes at the end of Init), with the listener socket bound in between.
Then the listener's thread starts (``start_listener``): idle in ``poll`` unless the
platform sends telemetry, it spools what the handler prints while it is imported.

Phase two (``start``, after the handler import, so that it does not compete with
it) starts the event loop, whose first act is ``/event/next`` (Init is not over until
it arrives). While it waits for the platform it also does the background work: spool
recovery once, then a flush whenever the supervisor signals one is due.

Nothing here may take the function down: every failure is one diagnostic line and
the function carries on without telemetry.
"""

from __future__ import annotations

import os
import select
import threading
import time

from .. import aws, diagnostics
from ..export.policy import FlushPolicy
from ..http11 import HttpConnection
from .errors import PlatformError
from .events import PlatformEvent
from .lifecycle import Registration, next_event, register
from .listener import TelemetryListener
from .subscription import DEFAULT_BUFFERING, SubscriptionOutcome, subscribe

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..export.pipeline import Pipeline
    from ..settings import Settings
    from ..telemetry.records import TelemetryEvent

# Lambda allows 500 ms between SIGTERM and SIGKILL with an internal extension.
SHUTDOWN_BUDGET_S = 0.45
SIGKILL_MARGIN_S = 0.5 - SHUTDOWN_BUDGET_S
# Stop exporting at least this long before the budget ends: what is still undelivered
# then is counted and reported (one loss record per exporter, one stderr line) before
# the SIGKILL.
LOSS_REPORT_RESERVE_S = 0.04
# Below 1,769 MB (one vCPU) a function gets a share of each 100 ms CPU period; once
# that share is used up, nothing of the process runs until the next period. So
# SIGTERM may be seen up to the rest of a period after it came, and the loss report
# waits for the decode or export step already running, whose CPU (at most a platform
# batch of what is held) takes wall time in inverse proportion to the share.
FULL_VCPU_MB = 1769
CPU_PERIOD_S = 0.1
STEP_CPU_PER_RECORD_S = 1.5e-6
MAX_BATCH_RECORDS = int(DEFAULT_BUFFERING["maxItems"])
MAX_LOSS_REPORT_RESERVE_S = 0.3


def cpu_share(memory_mb: str | None) -> float:
    """The share of one vCPU a function of ``memory_mb`` gets (Lambda scales it linearly)."""
    try:
        return max(0.0, min(1.0, int(memory_mb or FULL_VCPU_MB) / FULL_VCPU_MB))
    except ValueError:
        return 1.0


def managed_instances() -> bool:
    return os.environ.get(aws.INITIALIZATION_TYPE) == aws.MANAGED_INSTANCES


def listener_host() -> str:
    """``sandbox.localdomain`` where it resolves locally, else all interfaces.

    Looking the name up through DNS could stall Init for seconds where it does not
    exist (SAM, local runs), so only the hosts file is consulted.
    """
    if os.environ.get(aws.SAM_LOCAL) == "true":
        return "0.0.0.0"
    try:
        with open("/etc/hosts", encoding="utf-8", errors="replace") as hosts:
            for line in hosts:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and aws.SANDBOX_HOST in fields[1:] and "." in fields[0]:
                    return fields[0]
    except OSError:
        pass
    return "0.0.0.0"


class InternalExtension:
    def __init__(self, settings: Settings, pipeline: Pipeline, types: list[str]) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.types = types
        self.registration: Registration | None = None
        self.listener = TelemetryListener(sink=pipeline.receive)
        self.subscription: SubscriptionOutcome | None = None
        self.policy = FlushPolicy()
        # Registering for INVOKE makes the platform wait for our /event/next after
        # every response (billed as extensionOverhead; docs/benchmarks.md). With only
        # local exporters nothing is lost by flushing beside the next invocation
        # instead, so "auto" chooses background; a remote exporter should finish
        # before the freeze, so it keeps adaptive.
        self.background = managed_instances() or settings.flush == "background" or (
            settings.flush == "auto" and all(channel.local for channel in pipeline.channels))
        self.invocations = 0
        self._api = os.environ.get(aws.RUNTIME_API, "")
        self._threads: list[threading.Thread] = []
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        self._handler_done = threading.Event()
        self._handler_done.set()
        # Written by the supervisor when a background flush is due; the event loop
        # polls it beside its pending /event/next.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._recovered = False
        self._listener_thread: threading.Thread | None = None

    # -- phase one ----------------------------------------------------------------
    def register(self) -> bool:
        if not self._api:
            diagnostics.emit("warning", "extension_unavailable",
                             "AWS_LAMBDA_RUNTIME_API is not set; running without the extension")
            return False
        # Managed Instances only allow internal extensions with no events; the
        # background strategy chooses the same to avoid any per-invoke platform wait.
        events = [] if self.background else ["INVOKE"]
        name = f"lambda-wrapper.{os.getpid()}"
        connection = HttpConnection(self._api)
        try:
            self.registration = register(connection, name, events)
        except (OSError, PlatformError) as exc:
            diagnostics.emit("warning", "extension_register_failed",
                             f"could not register the extension: {exc}; running without telemetry")
            connection.close()
            return False
        self._connection = connection
        try:
            self._subscribe()
        except Exception as exc:
            diagnostics.emit("warning", "telemetry_subscribe_failed", f"telemetry subscription failed: {exc}")
        return True

    # -- phase two ----------------------------------------------------------------
    def start_listener(self) -> None:
        """Serve the listener from now on; call before the handler is imported.

        Lines the handler prints while it is imported reach us during Init, and only a
        running listener spools them: if Init then dies (init timeout, crash) the next
        Init exports them. Until the platform sends something it waits in ``poll``.
        Even without a bound port it watches the SIGTERM wakeup fd.
        """
        self._listener_thread = self.listener.start()

    def start(self) -> None:
        """Start the event loop; call once the handler is imported, before Init ends."""
        self._spawn(self._event_loop, "lambda-wrapper-extension")
        self._prepare_exporters(local=True)
        if not all(channel.local for channel in self.pipeline.channels):
            # Remote exporters load TLS certificates (40-100 ms) on first use: do it
            # beside the end of Init, not inside the first invocation's flush budget.
            self._spawn(self._prepare_exporters, "lambda-wrapper-prepare")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _prepare_exporters(self, local: bool = False) -> None:
        """Each exporter's ``prepare`` (export.exporter): the local ones' or the remote ones'."""
        for channel in self.pipeline.channels:
            if channel.local is local:
                try:
                    channel.exporter.prepare()
                except Exception as exc:
                    diagnostics.emit("warning", "exporter_prepare_failed",
                                     f"{channel.name} exporter could not prepare: {exc}")

    def _subscribe(self) -> None:
        assert self.registration is not None
        port = self.listener.bind(listener_host(), self.settings.telemetry_port)
        if managed_instances() and not self._elected_telemetry_worker():
            # Every subscriber gets the whole stream: one worker subscribes for all.
            return
        schema = aws.MANAGED_INSTANCES_SCHEMA if managed_instances() else aws.CLASSIC_SCHEMA
        outcome = subscribe(self._connection, self.registration.extension_id, port, self.types, schema)
        self.subscription = outcome
        if outcome.state == SubscriptionOutcome.UNSUPPORTED:
            consequence = (
                "platform telemetry is not collected (LAMBDA_WRAPPER_TELEMETRY_SOURCE=platform)"
                if self.settings.telemetry_source == "platform"
                else "per-invocation records come from the wrapper's supervisor (source self)"
            )
            diagnostics.emit("info", "telemetry_unavailable",
                             "the Telemetry API is not available here (HTTP 202, a local emulator); "
                             f"the function runs, {consequence}", detail=outcome.detail)
        elif outcome.state == SubscriptionOutcome.FAILED:
            diagnostics.emit("warning", "telemetry_subscribe_failed",
                             f"telemetry subscription refused: HTTP {outcome.status} {outcome.detail}")

    def _elected_telemetry_worker(self) -> bool:
        """Under Managed Instances awslambdaric runs several worker processes, each with
        its own extension; the first to take this lock subscribes, the rest only export
        their own records."""
        import fcntl

        path = os.path.join(aws.wrapper_tmp_dir(), "telemetry-subscriber.lock")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._subscriber_lock = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(self._subscriber_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _event_loop(self) -> None:
        assert self.registration is not None
        failures = 0
        while True:
            try:
                event = next_event(self._connection, self.registration.extension_id, self._work_while_waiting)
                failures = 0
                if event.is_invoke:
                    self._on_invoke(event)
            except BaseException as exc:  # even SystemExit: this thread must live
                # The platform waits for our /next on every invoke: never stop asking.
                failures += 1
                if failures == 1:
                    diagnostics.emit("warning", "extension_next_failed", f"/event/next failed: {exc!r}")
                self._connection.close()
                time.sleep(min(1.0, 0.01 * failures))

    def _on_invoke(self, event: PlatformEvent) -> None:
        """Decide now whether this invocation ends with a flush; if not, return at once.

        Returning to ``/event/next`` straight away means the platform never waits for
        us. When a flush is due we wait for the in-process "handler done" signal (not
        for ``platform.runtimeDone``), export within the budget, then return.
        """
        self.invocations += 1
        self.policy.invocation_started()
        if not self.policy.due(self.pipeline.pending_batches, self.pipeline.unflushed_bytes):
            return
        wait_s = 900.0
        if event.deadline_ms is not None:
            wait_s = max(0.0, event.deadline_ms / 1000.0 - time.time())
        self._handler_done.wait(wait_s)
        self.flush()

    def _work_while_waiting(self, platform_fd: int) -> None:
        """Between sending ``/event/next`` and its answer: background work, until the
        platform's answer is readable.

        Registered for no events (background), this is where exports happen: while
        the environment is thawed, i.e. beside later invocations and at shutdown; the
        spool covers the gaps.
        """
        if not self._recovered:
            self._recovered = True
            try:
                if self.pipeline.recover() and self.background:
                    self.flush()
            except Exception as exc:
                diagnostics.emit("warning", "spool_recovery_failed",
                                 f"could not read the previous spool: {exc}")
        poller = select.poll()
        poller.register(platform_fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == platform_fd:
                    return
                try:
                    os.read(self._wake_read, 512)
                except OSError:
                    pass
                if self.pipeline.pending_batches:
                    self.flush()

    # -- in-process signals from the supervisor ---------------------------------------
    def handler_started(self, request_id: str) -> None:
        self._handler_done.clear()
        if self.background:
            self.policy.invocation_started()

    def ensure_running(self) -> None:
        """Restart a dead event loop or listener (cheap check; the supervisor calls it
        as each invocation starts and ends, with the rest of our threads).

        The platform waits for our ``/event/next`` on every invocation when we are
        registered for INVOKE: a dead loop would turn every invocation into a timeout.
        """
        loop = self._threads[0] if self._threads else None
        if loop is not None and not loop.is_alive() and self.registration is not None:
            self._connection.close()
            self._connection = HttpConnection(self._api)
            thread = threading.Thread(target=self._event_loop, name="lambda-wrapper-extension", daemon=True)
            thread.start()
            self._threads[0] = thread
            diagnostics.emit("warning", "extension_restarted", "the event loop stopped; restarted")
        if self._listener_thread is not None and not self._listener_thread.is_alive():
            self._listener_thread = self.listener.start()
            diagnostics.emit("warning", "listener_restarted", "the telemetry listener had stopped; restarted")

    def handler_finished(self, request_id: str) -> None:
        self._handler_done.set()
        if self.background and self.policy.due(self.pipeline.pending_batches, self.pipeline.unflushed_bytes):
            try:
                os.write(self._wake_write, b"\0")
            except BlockingIOError:  # the pipe is full: a wake-up is already pending
                pass

    def listener_lag_ms(self) -> float | None:
        """Delay between the platform's event time and our receipt, newest batch."""
        return self.pipeline.listener_lag_ms

    def submit(self, event: TelemetryEvent,
               amend: Callable[[list[TelemetryEvent]], None] | None = None) -> None:
        """Queue one of our own records (e.g. ``lambda_wrapper.invocation``) for export."""
        self.pipeline.submit(event, amend)

    # -- flushing -----------------------------------------------------------------
    def flush(self, budget_s: float | None = None) -> int:
        budget = self.settings.flush_budget_ms / 1000.0 if budget_s is None else budget_s
        try:
            return self.pipeline.flush(budget)
        except Exception as exc:  # never let a flush bug escape into the event loop
            diagnostics.emit("warning", "flush_failed", f"flush failed: {exc!r}")
            return 0
        finally:
            self.policy.flushed()

    def shutdown_flush(self, seen_at: float | None = None) -> None:
        """Export everything pending; runs once, from whichever path saw SIGTERM first.

        ``seen_at`` is when that path saw the signal (monotonic); the budget counts
        from then, less how late a throttled process may have seen it beyond the
        margin the budget leaves before the SIGKILL.
        """
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
            started = time.monotonic()
            share = cpu_share(os.environ.get(aws.FUNCTION_MEMORY_SIZE))
            seen = started if seen_at is None else min(seen_at, started)
            deadline = seen + SHUTDOWN_BUDGET_S - max(0.0, CPU_PERIOD_S * (1.0 - share) - SIGKILL_MARGIN_S)
            step = min(self.pipeline.held_records(), MAX_BATCH_RECORDS) * STEP_CPU_PER_RECORD_S
            reserve = LOSS_REPORT_RESERVE_S + step / max(share, 0.01)
            stop_exporting = deadline - min(MAX_LOSS_REPORT_RESERVE_S, reserve)
            # A flush running on the event loop's thread stops by then too.
            self.pipeline.finish_by(stop_exporting)
            exported = self.flush(SHUTDOWN_BUDGET_S)
            # Whether the platform delivers the last invocation's batches before or
            # after SIGTERM is not documented, so keep draining until the loss report
            # must start: the process has nothing else to do.
            while (remaining := stop_exporting - time.monotonic()) > 0:
                if self.listener.wait_for_data(min(0.05, remaining)):
                    exported += self.flush(max(0.0, stop_exporting - time.monotonic()))
            # From here batches still arriving are counted as lost, one report each.
            lost = self.pipeline.give_up("shutdown", deadline)
            diagnostics.emit("info", "shutdown_flush", "exported what was pending at SIGTERM",
                             exported=exported, tookMs=round((time.monotonic() - started) * 1000, 1),
                             lostRecords=sum(int(str(loss["droppedRecords"])) for loss in lost.values()))

    @property
    def alive(self) -> bool:
        """The event loop thread (the platform waits for its /next) is running."""
        return bool(self._threads) and self._threads[0].is_alive()
