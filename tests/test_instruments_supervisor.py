"""The supervisor around each invocation: records first, the extension's signal last, failures contained."""

from __future__ import annotations

import ctypes
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import lambda_wrapper.supervisor as supervisor_module
from garbage import cyclic_garbage, type_names
from lambda_wrapper.export import Exporter, Pipeline
from lambda_wrapper.instruments import ENDED_THREADS, INIT, INVOCATION, SETTLE_WAIT_S, InvocationRecord
from lambda_wrapper.settings import Settings
from lambda_wrapper.supervisor import Supervisor, wrap_handler


class FakeExtension:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def submit(self, event: Any, amend: Any = None) -> None:
        self.calls.append(("submit", event.type))

    def flush(self) -> int:
        self.calls.append(("flush", None))
        return 0

    def ensure_running(self) -> None:
        pass

    def handler_started(self, request_id: str) -> None:
        self.calls.append(("handler_started", request_id))

    def handler_finished(self, request_id: str) -> None:
        self.calls.append(("handler_finished", request_id))

    def registered(self) -> bool:
        return True

    def release(self) -> None:
        self.calls.append(("release", None))


def supervised(settings: dict[str, str] | None = None) -> tuple[Supervisor, FakeExtension]:
    supervisor = Supervisor(Settings(settings or {}))
    supervisor.timeline.init_ends()
    extension = FakeExtension()
    supervisor.extension = extension  # type: ignore[assignment]
    return supervisor, extension


def context(request_id: str) -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=request_id, _deadline_ms=int(time.time() * 1000) + 3000)


def test_records_go_before_the_extension_hears_the_handler_is_done() -> None:
    supervisor, extension = supervised()
    handler = wrap_handler(lambda event, ctx: {"ok": True}, supervisor)
    assert handler({}, context("r1")) == {"ok": True}
    assert handler({}, context("r2")) == {"ok": True}
    assert extension.calls == [
        ("submit", INIT),
        ("handler_started", "r1"),
        ("submit", INVOCATION),
        ("handler_finished", "r1"),
        ("handler_started", "r2"),
        ("submit", INVOCATION),
        ("handler_finished", "r2"),
    ]
    assert supervisor.invocations == 2


def test_the_deadline_is_awslambdarics_own() -> None:
    """The deadline header awslambdaric's context holds, as it came: a deadline already
    past is still that instant, not "now" from the time remaining (which stops at 0)."""
    from awslambdaric.lambda_context import LambdaContext

    seen: list[int | None] = []

    class Observer:
        def invocation_started(self, request_id: str, deadline_ms: int | None) -> None:
            seen.append(deadline_ms)

        def invocation_finished(self, request_id: str, duration_ms: float, error: object) -> None:
            pass

    deadline = int(time.time() * 1000) - 5000
    handler = wrap_handler(lambda event, ctx: None, Observer())
    handler({}, LambdaContext("r1", None, None, deadline))
    assert seen == [deadline]


def test_a_failing_instrument_never_reaches_the_function(capsys: pytest.CaptureFixture[str]) -> None:
    supervisor, extension = supervised()

    class BrokenWatchdog:
        def arm(self, *args: object) -> None:
            raise RuntimeError("arm broke")

        def disarm(self) -> None:
            raise RuntimeError("disarm broke")

    supervisor.watchdog = BrokenWatchdog()  # type: ignore[assignment]
    handler = wrap_handler(lambda event, ctx: "answer", supervisor)
    assert handler({}, context("r1")) == "answer"
    assert handler({}, context("r2")) == "answer"
    assert extension.calls[-1] == ("handler_finished", "r2")
    err = capsys.readouterr().err
    assert err.count('"event": "instruments_failed"') == 1  # said once, not per invocation


def test_the_handlers_exception_passes_through_with_its_type_recorded() -> None:
    supervisor, extension = supervised()

    def failing(event: object, ctx: object) -> None:
        raise ValueError("bad input")

    handler = wrap_handler(failing, supervisor)
    with pytest.raises(ValueError, match="bad input"):
        handler({}, context("r1"))
    assert extension.calls[-1] == ("handler_finished", "r1")


def test_the_wrappers_frame_is_not_in_a_function_errors_stack_trace() -> None:
    # awslambdaric drops the leading frames of a function error whose file is a
    # bootstrap.py (its own): the wrapper's frame must be one of them.
    from awslambdaric.bootstrap import build_fault_result

    supervisor, _ = supervised()

    def failing(event: object, ctx: object) -> None:
        raise ValueError("bad input")

    handler = wrap_handler(failing, supervisor)
    with pytest.raises(ValueError) as raised:
        handler({}, context("r1"))
    below_this_test = raised.tb.tb_next  # from the wrapper's frame down, as awslambdaric calls it
    assert below_this_test is not None
    error = build_fault_result((raised.type, raised.value, below_this_test), None)
    (frame,) = error["stackTrace"]
    assert "in failing" in frame and 'raise ValueError("bad input")' in frame


def test_a_failing_handler_leaves_its_event_to_reference_counting() -> None:
    # Kept in a local of ours, the error would hold its traceback, our frame and the
    # user's event in a cycle: memory held until a full collection, per invocation.
    supervisor, _ = supervised()

    class Payload:
        pass

    def failing(event: object, ctx: object) -> None:
        raise ValueError("bad input")

    handler = wrap_handler(failing, supervisor)
    with pytest.raises(ValueError):
        handler({"payload": Payload()}, context("r0"))  # warm-up
    with cyclic_garbage() as garbage:
        for index in range(3):
            with pytest.raises(ValueError):
                handler({"payload": Payload()}, context(f"r{index}"))
    assert "Payload" not in type_names(garbage), sorted(type_names(garbage))


def test_timeout_warning_flushes_through_the_extension() -> None:
    supervisor, extension = supervised({"LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": "100"})
    supervisor.start_watchdog()
    assert supervisor.watchdog is not None

    def slow(event: object, ctx: object) -> None:
        # Still running when the warning comes (100 ms before the deadline), however
        # late a loaded machine schedules the watchdog: done once the warning is flushed.
        give_up = time.monotonic() + 5.0
        while ("flush", None) not in extension.calls and time.monotonic() < give_up:
            time.sleep(0.01)

    handler = wrap_handler(slow, supervisor)
    ctx = SimpleNamespace(aws_request_id="slow", _deadline_ms=int(time.time() * 1000) + 300)
    handler({}, ctx)
    warning = extension.calls.index(("submit", "lambda_wrapper.warning"))
    assert extension.calls[warning + 1] == ("flush", None)
    assert warning < extension.calls.index(("handler_finished", "slow"))


class SlowToSignal:
    """A real pipeline behind an extension whose submission and signal take known time."""

    SUBMIT_S = 0.03
    SIGNAL_S = 0.03

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def submit(self, event: Any, amend: Any = None) -> None:
        self.pipeline.submit(event, amend)
        if event.type == INVOCATION:
            time.sleep(self.SUBMIT_S)

    def handler_started(self, request_id: str) -> None:
        pass

    def handler_finished(self, request_id: str) -> None:
        time.sleep(self.SIGNAL_S)


class Collector(Exporter):
    name = "file"
    local = True
    telemetry_types = ("platform",)

    def __init__(self) -> None:
        self.records: list[Any] = []

    def prepare(self) -> None:
        pass

    def export(self, events: Any, deadline: float) -> None:
        self.records.extend(event.record for event in events if event.type == INVOCATION)


def test_wrapper_overhead_covers_submitting_the_record_and_signalling_the_extension(tmp_path: Path) -> None:
    collector = Collector()
    pipeline = Pipeline([collector], str(tmp_path / "spool"), 1 << 20)
    supervisor = Supervisor(Settings({}))
    supervisor.timeline.init_ends()
    supervisor.extension = SlowToSignal(pipeline)  # type: ignore[assignment]
    handler = wrap_handler(lambda event, ctx: time.sleep(0.05), supervisor)
    handler({}, context("r1"))
    pipeline.flush(1.0)
    (record,) = collector.records
    floor_ms = (SlowToSignal.SUBMIT_S + SlowToSignal.SIGNAL_S) * 1000
    assert floor_ms <= record["wrapperOverheadMs"] < floor_ms + 40  # ours, not the handler's 50 ms


def racing_record(thread_id: int) -> InvocationRecord:
    """An invocation record queued, its handler path not yet ended (``ended`` unset)."""
    record = InvocationRecord()
    record.begun, record.paused, record.resumed, record.submitted = 10.0, 10.0001, 10.5, 10.5001
    record.ended = None
    record.thread_id = thread_id
    record.request_id, record.cold_start, record.proactive_init = "r1", False, False
    record.handler_ms, record.error_type, record.process, record.ended_epoch_s = 500.0, None, None, 1.0
    return record


def test_a_flush_racing_the_end_of_the_handler_path_waits_for_the_final_overhead() -> None:
    record = racing_record(threading.get_ident())  # queued on this thread, the handler's
    made: list[Any] = []
    flush = threading.Thread(target=lambda: made.append(record.to_event(None)))
    flush.start()
    time.sleep(0.02)  # the flush is waiting now
    record.ended = 10.5003
    flush.join(1)
    assert made[0].record["wrapperOverheadMs"] == 0.4  # 0.1 before the handler, 0.3 after


def test_a_flush_on_the_handlers_own_thread_does_not_wait_for_itself() -> None:
    """A SIGTERM handler flushing between the record's queueing and the handler path's end
    runs on that path's thread: it takes the figure as of the queueing, at once."""
    record = racing_record(threading.get_ident())
    started = time.monotonic()
    event = record.to_event(None)
    assert time.monotonic() - started < SETTLE_WAIT_S / 2
    # 0.1 before the handler, 0.1 to the queueing:
    assert isinstance(event.record, dict) and event.record["wrapperOverheadMs"] == 0.2


def test_a_registered_extension_is_released_even_when_the_source_cannot_be_chosen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Registered, the platform ends Init only once the event loop asks for its next
    event: a failure in choosing where per-invocation records come from must not keep it
    from asking (Init would run into its timeout)."""
    supervisor, extension = supervised()

    def broken(extension: object) -> None:
        raise OSError("no in-flight marker")

    monkeypatch.setattr(supervisor, "_choose_telemetry_source", broken)
    supervisor.finish_extension_start()
    assert extension.calls == [("release", None)]
    assert supervisor.extension is extension
    assert "the telemetry source could not be chosen" in capsys.readouterr().err


class PhaseOne(FakeExtension):
    """An extension whose phase one ends with ``outcome``; it notes which in-flight
    markers existed when the supervisor began to wait for it."""

    def __init__(self, outcome: bool, markers: Path) -> None:
        super().__init__()
        self.outcome = outcome
        self.markers = markers
        self.markers_while_waited_for: list[str] | None = None
        self.subscription = None  # no Telemetry API answer: the self source
        self.pipeline = SimpleNamespace(arbiter=None)

    def registered(self) -> bool:
        self.markers_while_waited_for = sorted(path.name for path in self.markers.glob("*"))
        return self.outcome


def phase_one(monkeypatch: pytest.MonkeyPatch, tmp: Path, outcome: bool) -> tuple[Supervisor, PhaseOne]:
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(supervisor_module, "TELEMETRY_SOURCE", None)  # what the source choice sets
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    supervisor, _ = supervised()
    extension = PhaseOne(outcome, tmp / "lambda-wrapper" / "in-flight")
    supervisor.extension = extension  # type: ignore[assignment]
    return supervisor, extension


def test_the_in_flight_marker_is_made_while_phase_one_runs_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Every subscription outcome under the default source keeps a marker: it is made
    before the supervisor waits for phase one (off Init's critical path), and it is the
    one the chosen source uses."""
    supervisor, extension = phase_one(monkeypatch, tmp_path, outcome=True)
    supervisor.finish_extension_start()
    assert supervisor.telemetry_source == "self" and supervisor.in_flight is not None
    made = Path(supervisor.in_flight.path).name
    assert extension.markers_while_waited_for == [made]
    assert sorted(path.name for path in extension.markers.glob("*")) == [made]
    assert extension.calls == [("release", None)]


def test_a_failed_registration_leaves_no_in_flight_marker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The marker made early is for a source no one chooses then: the next Init in this
    environment must not find it and take it for a dead process's."""
    supervisor, extension = phase_one(monkeypatch, tmp_path, outcome=False)
    supervisor.finish_extension_start()
    assert supervisor.extension is None and supervisor.in_flight is None
    assert extension.markers_while_waited_for  # it was made early
    assert list(extension.markers.glob("*")) == []


def test_an_in_flight_marker_that_cannot_be_made_early_is_said_once_the_source_is_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The same one line as when it was made after the wait; Init goes on, released."""
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    supervisor, extension = phase_one(monkeypatch, not_a_directory, outcome=True)
    supervisor.finish_extension_start()
    assert supervisor.telemetry_source == "self" and supervisor.in_flight is None
    assert extension.calls == [("release", None)]
    assert capsys.readouterr().err.count("the in-flight marker is off") == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill
def test_a_thread_that_ended_is_started_again_by_the_next_invocation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The handler's path asks the threads' owners only when a flagged thread has ended
    (``ENDED_THREADS``): a watchdog killed between invocations is running again once
    the next one has started, and said so once."""
    supervisor, _ = supervised({"LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": "100"})
    supervisor.start_watchdog()
    watchdog = supervisor.watchdog
    assert watchdog is not None
    handler = wrap_handler(lambda event, ctx: None, supervisor)
    handler({}, context("r1"))
    killed = watchdog._thread
    assert killed.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(killed.ident), ctypes.py_object(SystemExit))
    killed.join(2)
    assert not killed.is_alive()
    handler({}, context("r2"))
    assert watchdog._thread is not killed and watchdog._thread.is_alive()
    handler({}, context("r3"))
    assert capsys.readouterr().err.count('"watchdog_restarted"') == 1
    assert not ENDED_THREADS


def test_a_memory_spike_between_two_samples_warns_at_return_and_only_for_its_invocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lambda_wrapper.instruments as instruments
    import lambda_wrapper.instruments.watchdog as watchdog_module

    rss = instruments.rss_bytes()
    assert rss is not None
    monkeypatch.setattr(watchdog_module, "rss_bytes", lambda: 0)  # the watchdog's samples see nothing
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(rss // (1024 * 1024) + 48))
    supervisor, _ = supervised({"LAMBDA_WRAPPER_MEMORY_WARNING_PCT": "100"})
    warned: list[str] = []
    supervisor.start_watchdog()
    assert supervisor.watchdog_reports is not None
    monkeypatch.setattr(supervisor.watchdog_reports, "on_memory_warning",
                        lambda request_id, *_: warned.append(request_id))

    def spike(event: dict[str, int], ctx: object) -> None:
        if event["mb"]:
            hold = bytearray(event["mb"] * 1024 * 1024)
            hold[::4096] = b"x" * len(hold[::4096])
            del hold

    handler = wrap_handler(spike, supervisor)
    for request_id, mb in (("spike", 96), ("after", 0)):
        handler({"mb": mb}, context(request_id))
    assert warned == ["spike"]
