"""The self source in the sandbox: with the Telemetry API the platform's records only,
no duplicates; with the subscription refused (``--no-telemetry-api``, the RIE's 202)
the supervisor's records only; ``LAMBDA_WRAPPER_TELEMETRY_SOURCE`` overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambda_wrapper.instruments import HOLD, HOLD_INVOCATIONS, SELF, SourceArbiter
from lambda_wrapper.telemetry import TelemetryEvent
from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox, run_command

pytestmark = pytest.mark.timeout(120)

APP = '''
def handler(event, context):
    if event.get("raise"):
        raise KeyError("missing")
    return {"ok": True}
'''


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str, output: str = "json",
        event: str = "{}") -> tuple[int, str, list[dict]]:
    task_root = tmp_path / "task"
    task_root.mkdir(parents=True, exist_ok=True)
    (task_root / "app.py").write_text(APP)
    function_tmp = tmp_path / "fn-tmp"
    code = run_command.main([
        "--task-root", str(task_root), "--handler", "app.handler", "--invokes", "3", "--event", event,
        "--output", output, "--tmp", str(function_tmp), *extra,
    ])
    out = capsys.readouterr().out
    path = function_tmp / "lambda-wrapper" / "telemetry.ndjson"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return code, out, lines


def of_type(lines: list[dict], kind: str) -> list[dict]:
    return [line for line in lines if line["type"] == kind]


def sources(lines: list[dict], kind: str) -> list[str]:
    return [line["record"].get("source", "platform") for line in of_type(lines, kind)]


def test_with_the_telemetry_api_the_platform_reports_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, lines = run(tmp_path, capsys)
    assert code == 0
    reports = of_type(lines, "platform.report")
    document = json.loads(out)
    assert [r["record"]["requestId"] for r in reports] == [i["requestId"] for i in document["invocations"]]
    for kind in ("platform.start", "platform.runtimeDone", "platform.report"):
        assert sources(lines, kind) == ["platform"] * 3, kind
    assert [r["invocation"]["source"] for r in reports] == ["platform"] * 3
    assert document["telemetrySource"] == "platform"


def test_with_the_subscription_refused_the_supervisor_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, lines = run(tmp_path, capsys, "--no-telemetry-api", output="text", event='{"raise": true}')
    assert code == 1  # the function raised
    for kind in ("platform.start", "platform.runtimeDone", "platform.report"):
        assert sources(lines, kind) == ["self"] * 3, kind
    invocations = [r["invocation"] for r in of_type(lines, "platform.report")]
    assert [i["coldStart"] for i in invocations] == [True, False, False]
    assert {(i["failed"], i["errorType"], i["source"]) for i in invocations} == {(True, "KeyError", "self")}
    assert "self-reported by the wrapper's supervisor" in out
    table = out[out.index("self-reported by the wrapper's supervisor"):].splitlines()[2:5]
    assert all(" error " in row and "KeyError" in row for row in table), table
    assert "subscribed no" in out


def test_the_setting_chooses_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, forced_self = run(tmp_path / "a", capsys, "--env", "LAMBDA_WRAPPER_TELEMETRY_SOURCE=self")
    for kind in ("platform.start", "platform.runtimeDone", "platform.report"):
        assert sources(forced_self, kind) == ["self"] * 3, kind
    _, _, forced_platform = run(tmp_path / "b", capsys, "--no-telemetry-api",
                                "--env", "LAMBDA_WRAPPER_TELEMETRY_SOURCE=platform")
    assert not of_type(forced_platform, "platform.report")
    assert len(of_type(forced_platform, "lambda_wrapper.invocation")) == 3


DIES_ONCE = '''
import os

MARK = "/tmp/died-once"

def handler(event, context):
    if not os.path.exists(MARK):
        open(MARK, "w").close()
        if event.get("oom"):
            hog = []
            while True:
                hog.append(bytearray(16 * 1024 * 1024))
        os._exit(1)
    return {"ok": True}
'''


@pytest.mark.parametrize(("event_json", "error_type"), [
    ('{"oom": true}', "Runtime.OutOfMemory"),
    ("{}", "Runtime.ExitError"),
])
def test_a_death_is_counted_at_the_next_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], event_json: str, error_type: str
) -> None:
    """The dead process's in-flight marker names the invocation; the cgroup's oom_kill
    counter (the sandbox enforces --memory with a memory cgroup as root) tells an
    out-of-memory kill from another death."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(DIES_ONCE)
    function_tmp = tmp_path / "fn-tmp"
    run_command.main([
        "--task-root", str(task_root), "--handler", "app.handler", "--invokes", "3", "--event", event_json,
        "--output", "json", "--tmp", str(function_tmp), "--no-telemetry-api",
        # At 7 % of a CPU on a loaded machine the hog can take seconds to reach the
        # limit: a timeout, reported by the watchdog before the deadline, is another case.
        "--timeout", "30",
    ])
    document = json.loads(capsys.readouterr().out)
    died = document["invocations"][0]
    assert died["status"] != "success"
    reports = [r for r in document["selfReports"]]
    dead = [r for r in reports if r["requestId"] == died["requestId"]]
    assert len(dead) == 1 and (dead[0]["status"], dead[0].get("errorType")) == ("error", error_type), dead
    assert "durationMs" not in dead[0]["metrics"]  # when it died is not known
    assert sorted(r["requestId"] for r in reports) == sorted(i["requestId"] for i in document["invocations"])


RETURNS_LATE = '''
import time

def handler(event, context):
    time.sleep(max(0.0, context.get_remaining_time_in_millis() / 1000.0 - 0.04))
    return {"ok": True}
'''


def test_a_handler_returning_after_its_timeout_report_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The watchdog reports the timeout 100 ms before the deadline; the handler then
    returns 40 ms before it: the timeout report stands, alone."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(RETURNS_LATE)
    function_tmp = tmp_path / "fn-tmp"
    run_command.main([
        "--task-root", str(task_root), "--handler", "app.handler", "--invokes", "2", "--timeout", "1",
        "--output", "json", "--tmp", str(function_tmp), "--no-telemetry-api",
    ])
    document = json.loads(capsys.readouterr().out)
    assert [i["status"] for i in document["invocations"]] == ["success", "success"]  # for the platform
    reports = document["selfReports"]
    assert [r["requestId"] for r in reports] == [i["requestId"] for i in document["invocations"]]
    assert [r["status"] for r in reports] == ["timeout", "timeout"]


def event(kind: str, request_id: str, source: str | None = None) -> TelemetryEvent:
    record: dict[str, object] = {"requestId": request_id}
    if source is not None:
        record["source"] = source
    return TelemetryEvent("2026-12-04T00:00:00.000Z", kind, record, request_id=request_id)


def test_a_held_self_record_gives_way_to_the_platform_report() -> None:
    arbiter = SourceArbiter(HOLD)
    arbiter.hold("a", lambda: [event("platform.report", "a", SELF)])
    assert [e.type for e in arbiter.filter([event("platform.report", "a")])] == ["platform.report"]
    for index in range(HOLD_INVOCATIONS + 1):
        later = [event("platform.report", f"later-{index}", SELF)]
        arbiter.hold(f"later-{index}", later.copy)
    released = arbiter.release_due()
    assert "a" not in {e.request_id for e in released}
    assert [e.request_id for e in released] == ["later-0"]


def test_a_released_self_record_makes_the_late_platform_records_drop() -> None:
    arbiter = SourceArbiter(HOLD)
    arbiter.hold("a", lambda: [event("platform.report", "a", SELF)])
    assert arbiter.release_due() == []
    for index in range(HOLD_INVOCATIONS):
        arbiter.hold(f"later-{index}", list)
    assert [e.request_id for e in arbiter.release_due()] == ["a"]
    late = [event("platform.start", "a"), event("platform.report", "a"), event("platform.report", "b")]
    assert [e.request_id for e in arbiter.filter(late)] == ["b"]


def test_shutdown_releases_what_is_held() -> None:
    arbiter = SourceArbiter(HOLD)
    arbiter.hold("a", lambda: [event("platform.report", "a", SELF)])
    arbiter.release_all()
    assert [e.request_id for e in arbiter.release_due()] == ["a"]


KILLS_THE_WATCHDOG = '''
import ctypes
import threading
import time

WATCHDOG = "lambda-wrapper-watchdog"


def watchdogs():
    return [t for t in threading.enumerate() if t.name == WATCHDOG]


def handler(event, context):
    if event.get("kill"):
        # As the fault suite does: SystemExit raised into the real thread, again until it is gone.
        targets = watchdogs()
        until = time.monotonic() + 1.5
        while any(t.is_alive() for t in targets) and time.monotonic() < until:
            for thread in targets:
                if thread.is_alive():
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
            time.sleep(0.002)
        return {"hit": len(targets), "alive": sum(t.is_alive() for t in targets)}
    if event.get("sleep"):
        time.sleep(30)
    return {"alive": len(watchdogs())}
'''


def emf_documents(lines: list[str]) -> list[dict]:
    return [json.loads(line[line.index("{"):]) for line in lines if '"_aws"' in line]


def test_a_killed_watchdog_is_restarted_and_still_reports_the_timeout(
    tmp_path: Path, layer_dir: Path
) -> None:
    """Self is the source (the subscription refused): the watchdog thread that reports
    timeouts is killed during one invocation; the next one starts it again, and a
    handler that then sleeps past its deadline is still reported as timed out."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(KILLS_THE_WATCHDOG)
    spec = FunctionSpec(task_root=task_root, layer_dir=layer_dir, tmp_dir=tmp_path / "fn-tmp", timeout_s=1.0,
                        telemetry_api=False)
    with Sandbox(spec) as sandbox:
        killed = sandbox.invoke({"kill": True})
        after = sandbox.invoke({})
        timed_out = sandbox.invoke({"sleep": True})
    assert killed.json() == {"hit": 1, "alive": 0}  # the real thread died
    assert after.json() == {"alive": 1}  # back as the next invocation started
    assert timed_out.status == "timeout"
    output = sandbox.function_output
    assert any('"watchdog_restarted"' in line for line in output)
    reports = [d for d in emf_documents(output) if d.get("requestId") == timed_out.request_id
               and "Timeouts" in d]
    assert [(d["source"], d["Timeouts"]) for d in reports] == [("self", 1)]
