"""The sandbox's Init/Invoke lifecycle with the real awslambdaric and real processes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox.probes import (
    read_records,
    telemetry_subscription,
    write_probe_extension,
    write_probe_function,
    write_probe_runtime,
)
from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def interpreter() -> str:
    return str(ensure_runtime_image().interpreter)


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    write_probe_function(tmp_path / "task")
    return tmp_path / "task"


def spec_for(tmp_path: Path, task_root: Path, **overrides: object) -> FunctionSpec:
    spec = FunctionSpec(task_root=task_root, use_wrapper=False, tmp_dir=tmp_path / "fn-tmp")
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


@pytest.fixture
def extension_dir(tmp_path: Path, interpreter: str) -> Path:
    directory = tmp_path / "extensions"
    write_probe_extension(directory, "probe-ext", interpreter)
    return directory


def types_of(sandbox: Sandbox) -> list[str]:
    return [event["type"] for event in sandbox.telemetry_events if event["type"].startswith("platform.")]


def test_lifecycle_events_come_in_lambda_order(tmp_path: Path, task_root: Path, extension_dir: Path) -> None:
    env = {"PROBE_INTERNAL": "1", "PROBE_EXT_TELEMETRY": telemetry_subscription(["platform"])}
    with Sandbox(spec_for(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        first = sandbox.invoke({"echo": 1})
        second = sandbox.invoke({"echo": 2})
    assert (first.status, second.status) == ("success", "success")
    assert first.json()["echo"] == 1
    assert types_of(sandbox) == [
        "platform.initStart",
        "platform.telemetrySubscription",
        "platform.initRuntimeDone",
        "platform.extension",
        "platform.extension",
        "platform.initReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
    extensions = [e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.extension"]
    assert {(e["name"], e["state"], tuple(e["events"])) for e in extensions} == {
        ("probe-ext", "Ready", ("INVOKE", "SHUTDOWN")),
        ("probe-internal", "Ready", ("INVOKE",)),
    }
    init_start = sandbox.telemetry_events[0]["record"]
    assert init_start["phase"] == "init" and init_start["initializationType"] == "on-demand"
    assert [i.coldStart for i in sandbox.invocations] == [True, False]
    assert sandbox.invocations[0].initDurationMs is not None and sandbox.invocations[1].initDurationMs is None
    # The subscriber got the Init events replayed, initStart first.
    batches = [
        r["batch"] for r in read_records(tmp_path / "fn-tmp", "ext-probe-ext") if r["kind"] == "telemetry"
    ]
    delivered = [event["type"] for batch in batches for event in batch]
    assert delivered[0] == "platform.initStart"
    assert "platform.report" in delivered  # the last report is flushed at shutdown


def test_invoke_event_body_and_headers(tmp_path: Path, task_root: Path, extension_dir: Path) -> None:
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    with Sandbox(spec_for(tmp_path, task_root, extensions_dir=extension_dir, function_name="fn1")) as sandbox:
        plain = sandbox.invoke({})
        traced = sandbox.invoke({}, trace_id=trace)
    events = [r for r in read_records(tmp_path / "fn-tmp", "ext-probe-ext") if r["kind"] == "event"]
    invoke_events = [r for r in events if json.loads(r["body"])["eventType"] == "INVOKE"]
    assert len(invoke_events) == 2
    body = json.loads(invoke_events[0]["body"])
    assert list(body) == ["eventType", "deadlineMs", "requestId", "invokedFunctionArn"]
    assert body["requestId"] == plain.request_id
    assert body["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:012345678912:function:fn1"
    assert isinstance(body["deadlineMs"], int) and body["deadlineMs"] > invoke_events[0]["at"] * 1000
    assert not invoke_events[0]["body"].endswith("\n")  # json.Marshal, as in RAPID
    uuid.UUID(invoke_events[0]["headers"]["Lambda-Extension-Event-Identifier"])
    assert invoke_events[0]["headers"]["Content-Type"] == "application/json"
    traced_body = json.loads(invoke_events[1]["body"])
    assert traced_body["requestId"] == traced.request_id
    assert traced_body["tracing"] == {"type": "X-Amzn-Trace-Id", "value": trace}
    shutdown = json.loads(events[-1]["body"])
    assert list(shutdown) == ["eventType", "deadlineMs", "shutdownReason"]
    assert shutdown["shutdownReason"] == "spindown"


def test_runtime_next_headers(tmp_path: Path, task_root: Path, interpreter: str) -> None:
    write_probe_runtime(task_root)
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    spec = spec_for(
        tmp_path,
        task_root,
        function_name="headers",
        timeout_s=2.0,
        bootstrap_argv=[interpreter, "probe_runtime.py"],
    )
    with Sandbox(spec) as sandbox:
        result = sandbox.invoke(b'{"k": 1}', trace_id=trace, client_context='{"custom": {"a": "b"}}')
    assert result.status == "success" and result.json() == {"k": 1}
    next_call, response = [r for r in read_records(tmp_path / "fn-tmp", "runtime")][:2]
    headers = next_call["headers"]
    assert headers["Lambda-Runtime-Aws-Request-Id"] == result.request_id
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:headers")
    assert headers["Lambda-Runtime-Trace-Id"] == trace
    assert headers["Lambda-Runtime-Client-Context"] == '{"custom": {"a": "b"}}'
    assert headers["Content-Type"] == "application/json"
    deadline = int(headers["Lambda-Runtime-Deadline-Ms"])
    assert 1500 < deadline - next_call["at"] * 1000 <= 2000
    assert next_call["body"] == '{"k": 1}'
    assert (response["status"], response["body"]) == (202, '{"status":"OK"}\n')
    assert response["headers"]["Content-Type"] == "application/json"


def test_report_waits_for_the_extensions_next(tmp_path: Path, task_root: Path, extension_dir: Path) -> None:
    env = {"PROBE_EXT_NEXT_DELAY_S": "0.3"}
    with Sandbox(spec_for(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        result = sandbox.invoke({})
    assert result.status == "success"
    done = next(e for e in sandbox.telemetry_events if e["type"] == "platform.runtimeDone")["record"]
    report = next(e for e in sandbox.telemetry_events if e["type"] == "platform.report")["record"]
    assert done["metrics"]["durationMs"] < 200
    assert report["metrics"]["durationMs"] >= 300
    overhead = next(span for span in report["spans"] if span["name"] == "extensionOverhead")
    assert overhead["durationMs"] >= 290
    assert [span["name"] for span in done["spans"]] == ["responseLatency", "responseDuration"]
    assert done["metrics"]["producedBytes"] == len(result.body)
    assert report["metrics"]["maxMemoryUsedMB"] > 5


def test_timeout_resets_and_the_next_invoke_reinitialises(
    tmp_path: Path, task_root: Path, extension_dir: Path
) -> None:
    # The re-Init after the reset runs inside the next invoke, under its timeout: leave room.
    spec = spec_for(tmp_path, task_root, timeout_s=1.5, extensions_dir=extension_dir)
    with Sandbox(spec) as sandbox:
        slow = sandbox.invoke({"sleep": 3})
        after = sandbox.invoke({"echo": "again"})
    assert (slow.status, slow.status_code, slow.body) == (
        "timeout",
        200,
        b"Task timed out after 1.50 seconds",
    )
    assert after.status == "success" and after.json()["echo"] == "again"
    report = next(e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.report")
    assert report["status"] == "timeout" and report["metrics"]["durationMs"] == 1500.0
    phases = [e["record"]["phase"] for e in sandbox.telemetry_events if e["type"] == "platform.initStart"]
    assert phases == ["init", "invoke"]
    shutdown_reasons = [
        json.loads(r["body"]).get("shutdownReason")
        for r in read_records(tmp_path / "fn-tmp", "ext-probe-ext")
        if r["kind"] == "event"
    ]
    assert "timeout" in shutdown_reasons
    assert [i.coldStart for i in sandbox.invocations] == [True, True]


def test_crash_resets_and_the_next_invoke_reinitialises(tmp_path: Path, task_root: Path) -> None:
    with Sandbox(spec_for(tmp_path, task_root)) as sandbox:
        crash = sandbox.invoke({"exit": 3})
        after = sandbox.invoke({"echo": "back"})
    assert (crash.status, crash.error_type, crash.status_code) == ("error", "Runtime.ExitError", 502)
    assert crash.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {crash.request_id} Error: Runtime exited with error: exit status 3",
    }
    assert after.status == "success" and after.json()["echo"] == "back"
    report = next(e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.report")
    assert (report["status"], report["errorType"]) == ("error", "Runtime.ExitError")
    assert len(read_records(tmp_path / "fn-tmp", "function")) == 2  # two Inits


def test_function_error_is_returned_like_the_rie(tmp_path: Path, task_root: Path) -> None:
    with Sandbox(spec_for(tmp_path, task_root)) as sandbox:
        failed = sandbox.invoke({"raise": "boom"})
        fine = sandbox.invoke({"echo": 1})
    assert (failed.status, failed.status_code, failed.error_type) == ("error", 200, "ValueError")
    assert failed.json()["errorMessage"] == "boom" and failed.json()["errorType"] == "ValueError"
    assert fine.status == "success"  # a function error does not reset
    assert len(read_records(tmp_path / "fn-tmp", "function")) == 1


def test_init_error_answers_502_and_retries_init(tmp_path: Path) -> None:
    task_root = tmp_path / "broken"
    task_root.mkdir()
    (task_root / "app.py").write_text("raise RuntimeError('import boom')\n")
    with Sandbox(spec_for(tmp_path, task_root)) as sandbox:
        first = sandbox.invoke({})
        second = sandbox.invoke({})
    for result in (first, second):
        assert (result.status_code, result.status) == (502, "error")
        assert result.json()["errorMessage"] == "import boom"
    reports = [e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.initReport"]
    assert [(r["phase"], r["status"]) for r in reports] == [
        ("init", "error"),
        ("invoke", "error"),
        ("invoke", "error"),
    ]


def test_missing_wrapper_exits_127_like_the_managed_runtime(tmp_path: Path, task_root: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    with Sandbox(spec_for(tmp_path, task_root, layer_dir=layer, use_wrapper=True)) as sandbox:
        result = sandbox.invoke({})
    assert (result.status_code, result.body, result.error_type) == (502, b"", "Runtime.ExitError")
    assert (
        "/opt/lambda-wrapper: does not exist" in sandbox.function_output
        or f"{layer}/lambda-wrapper: does not exist" in sandbox.function_output
    )


def test_runtime_environment(tmp_path: Path, task_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/should/not/leak")
    monkeypatch.setenv("HOST_ONLY_SECRET", "leak")
    spec = spec_for(tmp_path, task_root, function_name="envfn", memory_mb=256, env={"MY_SETTING": "on"})
    with Sandbox(spec) as sandbox:
        result = sandbox.invoke({"environment": True})
    answer = result.json()
    env = answer["environment"]
    assert "HOST_ONLY_SECRET" not in env
    assert env["PYTHONPATH"] == env["LAMBDA_RUNTIME_DIR"]  # set by bootstrap.py, never inherited
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "envfn" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/envfn"
    assert "[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_LAMBDA_RUNTIME_API"] == sandbox.runtime_api
    assert env["_HANDLER"] == "app.handler" and env["MY_SETTING"] == "on"
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA") and "fake" in env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python")
    if sandbox.namespace_mode:
        assert env["LAMBDA_TASK_ROOT"] == "/var/task" and answer["cwd"] == "/var/task"
        assert answer["sys_path"][:3] == ["/var/task", answer["sys_path"][1], "/opt/python"]
    assert answer["function_arn"] == "arn:aws:lambda:us-east-1:012345678912:function:envfn"


def test_init_timeout_is_retried_inside_the_invoke(tmp_path: Path, task_root: Path) -> None:
    spec = spec_for(
        tmp_path, task_root, init_timeout_s=0.3, timeout_s=3.0, env={"PROBE_IMPORT_SLEEP_S": "0.6"}
    )
    with Sandbox(spec) as sandbox:
        first = sandbox.invoke({"echo": 1})
        second = sandbox.invoke({"echo": 2})
    assert first.status == "success" and first.json()["echo"] == 1
    assert second.status == "success"
    reports = [e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.initReport"]
    assert [(r["phase"], r["status"]) for r in reports] == [("init", "timeout"), ("invoke", "success")]
    invoke_report = next(e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.report")
    assert invoke_report["metrics"]["durationMs"] >= 600  # the suppressed Init counts in the invoke
    assert [i.coldStart for i in sandbox.invocations] == [True, False]


def test_layer_and_separate_extensions_dir_share_opt(
    tmp_path: Path, task_root: Path, extension_dir: Path
) -> None:
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "layer_module.py").write_text("VALUE = 'from the layer'\n")
    spec = spec_for(tmp_path, task_root, layer_dir=layer, extensions_dir=extension_dir)
    with Sandbox(spec) as sandbox:
        answer = sandbox.invoke({"environment": True}).json()
    assert any(
        e["record"]["name"] == "probe-ext"
        for e in sandbox.telemetry_events
        if e["type"] == "platform.extension"
    )
    opt_python = "/opt/python" if sandbox.namespace_mode else str(layer.resolve() / "python")
    assert opt_python in answer["sys_path"]
    assert (layer / "extensions").exists() is False  # nothing was created in the caller's layer
