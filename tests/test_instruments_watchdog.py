"""The watchdogs: a timeout warning with the handler's stack, then a flush; the memory warning."""

from __future__ import annotations

import ctypes
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from function_runs import parse_json_object, read_exported, run_function
from lambda_wrapper.instruments import WARNING
from lambda_wrapper.instruments.stacks import thread_stack
from lambda_wrapper.instruments.watchdog import Watchdog

SLEEPER = {
    "app.py": """
        import time

        def sleep_past_the_deadline():
            time.sleep(30)

        def handler(event, context):
            sleep_past_the_deadline()
    """
}
MEMORY_HOG = {
    "app.py": """
        def handler(event, context):
            hold = [bytearray(1024 * 1024) for _ in range(event["mb"])]
            return {"held": len(hold)}
    """
}


class Recorder:
    def __init__(self) -> None:
        self.timeouts: list[tuple[str, int, float, float]] = []
        self.memory: list[tuple[str, int, int]] = []
        self.fired = threading.Event()

    def on_timeout(self, request_id: str, thread_id: int, left_ms: float) -> None:
        self.timeouts.append((request_id, thread_id, left_ms, time.time()))
        self.fired.set()

    def on_memory(self, request_id: str, rss: int, limit: int) -> None:
        self.memory.append((request_id, rss, limit))
        self.fired.set()


def epoch_seconds(telemetry_time: str) -> float:
    return datetime.strptime(telemetry_time.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lambda-wrapper-watchdog"]


def test_timeout_warning_fires_once_at_the_warning_time() -> None:
    recorder = Recorder()
    before = len(watchdog_threads())
    watchdog = Watchdog(100, None, recorder.on_timeout, recorder.on_memory)
    deadline_ms = int(time.time() * 1000) + 300
    watchdog.arm("r1", deadline_ms, threading.get_ident())
    assert recorder.fired.wait(2)
    time.sleep(0.3)
    armed = watchdog.disarm()
    assert armed is not None and armed.timeout_fired
    ((request_id, thread_id, left_ms, fired_at),) = recorder.timeouts
    assert (request_id, thread_id) == ("r1", threading.get_ident())
    assert 50 <= left_ms <= 100
    assert abs(fired_at - (deadline_ms / 1000 - 0.1)) < 0.05  # on time, give or take a loaded machine
    assert len(watchdog_threads()) == before + 1


def test_a_disarmed_watchdog_stays_quiet_and_arming_again_reuses_its_thread() -> None:
    recorder = Recorder()
    watchdog = Watchdog(100, None, recorder.on_timeout, recorder.on_memory)
    threads = len(watchdog_threads())
    for index in range(50):
        watchdog.arm(f"r{index}", int(time.time() * 1000) + 150, threading.get_ident())
        watchdog.disarm()
    time.sleep(0.2)
    assert recorder.timeouts == []
    assert len(watchdog_threads()) == threads


def test_a_warning_longer_than_the_timeout_fires_halfway_not_at_once() -> None:
    recorder = Recorder()
    watchdog = Watchdog(5000, None, recorder.on_timeout, recorder.on_memory)
    started = time.time()
    watchdog.arm("r", int(started * 1000) + 400, threading.get_ident())
    assert recorder.fired.wait(2)
    watchdog.disarm()
    assert 0.15 <= recorder.timeouts[0][3] - started <= 0.3


def test_memory_warning_fires_when_rss_crosses_the_limit() -> None:
    recorder = Recorder()
    watchdog = Watchdog(0, 1, recorder.on_timeout, recorder.on_memory)  # any RSS crosses 1 byte
    watchdog.arm("m", None, threading.get_ident())
    assert recorder.fired.wait(2)
    armed = watchdog.disarm()
    assert armed is not None and armed.memory_fired and not armed.timeout_fired
    assert [(r, limit) for r, _, limit in recorder.memory] == [("m", 1)]


def test_a_sample_in_flight_at_disarm_and_the_check_at_return_warn_once(monkeypatch: Any) -> None:
    # The watchdog has read "not fired" and is sampling RSS when the handler returns;
    # the supervisor's own check at return sees the limit crossed too.
    import lambda_wrapper.instruments.watchdog as watchdog_module

    sampling, release = threading.Event(), threading.Event()

    def slow_rss() -> int:
        sampling.set()
        release.wait(5)
        return 10

    monkeypatch.setattr(watchdog_module, "rss_bytes", slow_rss)
    recorder = Recorder()
    watchdog = Watchdog(0, 1, recorder.on_timeout, recorder.on_memory)
    watchdog.arm("m", None, threading.get_ident())
    assert sampling.wait(2)
    armed = watchdog.disarm()
    assert armed is not None and not armed.memory_fired
    claims = [armed.claim_memory_warning()]  # what the supervisor does at return
    release.set()
    time.sleep(0.2)  # the watchdog's sample completes and would warn a second time
    assert claims == [True] and recorder.memory == []


def test_thread_stack_names_the_running_function() -> None:
    ready, release = threading.Event(), threading.Event()

    def waiting_for_release() -> None:
        ready.set()
        release.wait(5)

    thread = threading.Thread(target=waiting_for_release)
    thread.start()
    ready.wait(5)
    try:
        assert thread.ident is not None
        stack = thread_stack(thread.ident)
    finally:
        release.set()
        thread.join()
    assert stack is not None
    assert any("in waiting_for_release: release.wait(5)" in line for line in stack)
    assert "threading.py" in stack[-1]  # innermost last, like a traceback


# -- end to end -------------------------------------------------------------------------


def test_timeout_warning_with_stack_is_flushed_before_the_platform_reports_the_timeout(
    layer_dir: Path, tmp_path: Path
) -> None:
    exported_file = tmp_path / "tmp" / "lambda-wrapper" / "telemetry.ndjson"
    seen_while_running: list[tuple[float, dict[str, Any]]] = []

    def watch_the_export() -> None:
        # The export must hold the warning while the handler is still sleeping.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen_while_running:
            found = [e for e in read_exported(exported_file) if e["type"] == WARNING]
            seen_while_running.extend((time.time(), event) for event in found)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_the_export)
    watcher.start()
    run = run_function(
        layer_dir, tmp_path, SLEEPER, timeout_s=1.5, env={"LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": "500"}
    )
    watcher.join()
    result = run.results[0]
    assert result.status == "timeout", run.text()

    (line,) = run.diagnostics("timeout_warning")
    assert line["level"] == "warning"
    assert line["requestId"] == result.request_id
    assert any("in sleep_past_the_deadline: time.sleep(30)" in frame for frame in line["stack"])
    assert "in handler" in line["stack"][0]  # starts at the user's handler, not in the runtime

    # Order on the platform's side: the warning line, then the timeout.
    times = {}
    for event in run.events:
        if event["type"] == "function" and "timeout_warning" in str(event["record"]):
            times["warning"] = event["time"]
        if event["type"] == "platform.runtimeDone" and event["record"].get("status") == "timeout":
            times["timeout"] = event["time"]
    assert times["warning"] < times["timeout"], times

    assert seen_while_running, "the warning was never exported"
    seen_at, warning = seen_while_running[0]
    assert seen_at < epoch_seconds(times["timeout"]), "exported only after the platform's timeout"
    assert warning["record"]["kind"] == "timeout"
    assert warning["record"]["requestId"] == result.request_id
    assert warning["record"]["stack"] == line["stack"]


def test_memory_warning_in_a_function(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(
        layer_dir,
        tmp_path,
        MEMORY_HOG,
        memory_mb=128,
        env={"LAMBDA_WRAPPER_MEMORY_WARNING_PCT": "50"},
        # The last one shows the peak is per invocation: the large one's is not seen again.
        payloads=[json.dumps({"mb": mb}).encode() for mb in (1, 80, 1)],
    )
    assert [r.status for r in run.results] == ["success"] * 3, run.text()
    large = run.results[1]
    lines = run.diagnostics("memory_warning")
    assert [line["requestId"] for line in lines] == [large.request_id], run.text()
    assert lines[0]["limitMB"] == 64.0 and lines[0]["rssMB"] >= 64.0
    (warning,) = run.records(WARNING)
    assert (warning["kind"], warning["requestId"]) == ("memory", large.request_id)


def test_diagnostic_lines_are_single_json_objects(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(
        layer_dir,
        tmp_path,
        MEMORY_HOG,
        env={"LAMBDA_WRAPPER_MEMORY_WARNING_PCT": "1"},
        payloads=[b'{"mb": 1}'],
    )
    (line,) = [text for text in run.output if "memory_warning" in text]
    parsed = parse_json_object(line)
    assert parsed is not None and parsed["logger"] == "lambda_wrapper" and parsed["event"] == "memory_warning"
    assert isinstance(parsed["timestamp"], float)  # epoch seconds


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill
def test_a_killed_watchdog_thread_is_started_again_and_still_warns() -> None:
    recorder = Recorder()
    before = set(watchdog_threads())
    watchdog = Watchdog(100, None, recorder.on_timeout, recorder.on_memory)
    (thread,) = set(watchdog_threads()) - before
    # As the fault suite kills our threads; it dies at its next poll.
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
    thread.join(2)
    assert not thread.is_alive()
    assert watchdog.ensure_running() is True
    assert watchdog.ensure_running() is False  # alive again: nothing to do
    watchdog.arm("after", int(time.time() * 1000) + 300, threading.get_ident())
    assert recorder.fired.wait(2)
    watchdog.disarm()
    assert [request_id for request_id, *_ in recorder.timeouts] == ["after"]
