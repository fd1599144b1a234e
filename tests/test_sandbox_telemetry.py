"""Telemetry and Logs API: subscriptions, validation, delivery, drops, freezing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox.probes import (
    read_records,
    telemetry_subscription,
    write_probe_extension,
    write_probe_function,
)
from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

pytestmark = pytest.mark.timeout(60)

HTTP_DESTINATION = {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243"}
VALID = {"schemaVersion": "2022-12-13", "types": ["platform"], "destination": HTTP_DESTINATION}


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    write_probe_function(tmp_path / "task")
    return tmp_path / "task"


@pytest.fixture
def extension_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "extensions"
    write_probe_extension(directory, "probe-ext", str(ensure_runtime_image().interpreter))
    return directory


def make_spec(tmp_path: Path, task_root: Path, **overrides: object) -> FunctionSpec:
    spec = FunctionSpec(task_root=task_root, use_wrapper=False, tmp_dir=tmp_path / "fn-tmp")
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def subscribe_call(body: object, api: str = "telemetry", with_id: bool = True) -> list:
    path = "/2022-07-01/telemetry" if api == "telemetry" else "/2020-08-15/logs"
    return ["PUT", path, body, {"Lambda-Extension-Identifier": "{id}"} if with_id else {}]


def delivered(tmp_path: Path, who: str) -> list[dict]:
    batches = [r["batch"] for r in read_records(tmp_path / "fn-tmp", who) if r["kind"] == "telemetry"]
    return [event for batch in batches for event in batch]


def test_subscription_answers(tmp_path: Path, task_root: Path, extension_dir: Path) -> None:
    calls = [
        subscribe_call(
            {**VALID, "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain"}, "types": []}
        ),
        subscribe_call({**VALID, "destination": {"protocol": "HTTP", "URI": "http://example.com:4243"}}),
        subscribe_call({**VALID, "destination": {"protocol": "HTTP", "URI": "https://sandbox:4243"}}),
        subscribe_call({**VALID, "schemaVersion": "2021-01-01"}),
        subscribe_call({**VALID, "types": ["platform", "metrics"]}),
        subscribe_call({**VALID, "buffering": {"maxItems": 10, "maxBytes": 262144, "timeoutMs": 24}}),
        subscribe_call(VALID, with_id=False),
        subscribe_call(
            {
                **VALID,
                "destination": {
                    "protocol": "HTTP",
                    "URI": "http://sandbox:4243/path",
                    "method": "POST",
                    "encoding": "JSON",
                },
            }
        ),
        subscribe_call(
            {"schemaVersion": "2020-08-15", "types": ["platform"], "destination": HTTP_DESTINATION},
            api="logs",
        ),
    ]
    after_init = [subscribe_call(VALID)]
    env = {"PROBE_EXT_CALLS": json.dumps(calls), "PROBE_EXT_CALLS_AFTER_INVOKE": json.dumps(after_init)}
    with Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        result = sandbox.invoke(
            {
                "call": [
                    "POST",
                    "/2020-01-01/extension/register",
                    {"events": []},
                    {"Lambda-Extension-Name": "too-late"},
                ]
            }
        )
    answers = [
        (r["status"], json.loads(r["body"]))
        for r in read_records(tmp_path / "fn-tmp", "ext-probe-ext")
        if r["kind"] == "call"
    ]
    validation = [(status, body["errorMessage"]) for status, body in answers[:6]]
    assert all(body["errorType"] == "ValidationError" for _, body in answers[:6])
    assert validation == [
        (400, "URI port is not provided; types should not be empty"),
        (400, "destination.URI host must be sandbox.localdomain"),
        (400, "URI scheme should be http"),
        (400, "schemaVersion should be one of 2022-07-01, 2022-12-13, 2025-01-29"),
        (400, "types should only contain platform, function, extension"),
        (
            400,
            "buffering.maxItems should be an integer between 1000 and 10000; "
            "buffering.timeoutMs should be an integer between 25 and 30000",
        ),
    ]
    assert answers[6] == (
        403,
        {
            "errorMessage": "Missing Lambda-Extension-Identifier header",
            "errorType": "Extension.MissingExtensionIdentifier",
        },
    )
    assert answers[7] == (200, "OK")  # unknown destination fields are tolerated
    assert answers[8][0] == 400 and "cannot be used together" in answers[8][1]["errorMessage"]
    assert answers[9] == (
        403,
        {
            "errorMessage": "Telemetry API subscription is closed already",
            "errorType": "Telemetry.SubscriptionClosed",
        },
    )
    late = result.json()["call"]
    assert late["status"] == 403
    assert json.loads(late["body"]) == {
        "errorMessage": "Extension registration closed already",
        "errorType": "Extension.RegistrationClosed",
    }
    subscriptions = [
        e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.telemetrySubscription"
    ]
    assert subscriptions == [{"name": "probe-ext", "state": "Subscribed", "types": ["platform"]}]


def test_function_lines_are_records_and_batches_follow_buffering(
    tmp_path: Path, task_root: Path, extension_dir: Path
) -> None:
    env = {"PROBE_EXT_TELEMETRY": telemetry_subscription(["platform", "function"], timeout_ms=25)}
    with Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        sandbox.invoke({"lines": 3, "print": "multi\nline"})
    events = delivered(tmp_path, "ext-probe-ext")
    lines = [e["record"] for e in events if e["type"] == "function"]
    assert lines == ["line 0\n", "line 1\n", "line 2\n", "multi\n", "line\n"]
    types = [e["type"] for e in events]
    assert types.index("platform.start") < types.index("function") < types.index("platform.runtimeDone")
    assert all(set(e) == {"time", "type", "record"} for e in events)
    records = read_records(tmp_path / "fn-tmp", "ext-probe-ext")
    batches = [r for r in records if r["kind"] == "telemetry"]
    assert all(r["method"] == "POST" and r["path"] == "/" and r["sequence_id"] for r in batches)
    assert len(batches) >= 2  # timeoutMs 25 splits Init from the invoke
    assert not any(e["type"] == "platform.logsDropped" for e in sandbox.telemetry_events)


def test_slow_listener_gets_batches_dropped(tmp_path: Path, task_root: Path, extension_dir: Path) -> None:
    env = {
        "PROBE_EXT_TELEMETRY": telemetry_subscription(["platform", "function"], timeout_ms=25),
        "PROBE_LISTENER_DELAY_S": "0.4",
    }
    with Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        for _ in range(3):
            sandbox.invoke({"lines": 2, "sleep": 0.1})
    all_drops = [e["record"] for e in sandbox.telemetry_events if e["type"] == "platform.logsDropped"]
    drops = [drop for drop in all_drops if not drop["reason"].startswith("could not send")]  # not at shutdown
    assert drops, f"the slow listener should have lost batches: {all_drops}"
    assert drops[0]["reason"] == (
        "Some logs were dropped because the downstream consumer is slower than the logs production rate"
    )
    assert drops[0]["droppedRecords"] > 0 and drops[0]["droppedBytes"] > 0
    assert "platform.logsDropped" in [e["type"] for e in delivered(tmp_path, "ext-probe-ext")]


def test_frozen_internal_listener_is_never_counted_as_slow(tmp_path: Path, task_root: Path) -> None:
    env = {
        "PROBE_INTERNAL": "1",
        "PROBE_INTERNAL_TELEMETRY": telemetry_subscription(["platform"], timeout_ms=25),
    }
    with Sandbox(make_spec(tmp_path, task_root, env=env)) as sandbox:
        requests = []
        for _ in range(4):
            requests.append(sandbox.invoke({}).request_id)
            time.sleep(0.15)  # frozen, with telemetry still buffered for the listener
    assert not any(e["type"] == "platform.logsDropped" for e in sandbox.telemetry_events)
    reports = [
        e["record"]["requestId"] for e in delivered(tmp_path, "internal") if e["type"] == "platform.report"
    ]
    assert reports == requests


def test_json_log_format_records(tmp_path: Path, task_root: Path, extension_dir: Path) -> None:
    env = {
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "PROBE_EXT_TELEMETRY": telemetry_subscription(["function"], timeout_ms=25),
    }
    with Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        sandbox.invoke({"print": '{"level": "WARN", "message": "structured"}\nplain text'})
    records = [e["record"] for e in delivered(tmp_path, "ext-probe-ext") if e["type"] == "function"]
    assert {"level": "WARN", "message": "structured"} in records
    wrapped = next(r for r in records if isinstance(r, dict) and r.get("message") == "plain text")
    assert set(wrapped) == {"timestamp", "level", "message"}


def test_logs_api_subscriber_sees_the_older_event_set(
    tmp_path: Path, task_root: Path, extension_dir: Path
) -> None:
    body = json.dumps(
        {
            "schemaVersion": "2020-08-15",
            "types": ["platform", "function"],
            "buffering": {"timeoutMs": 25},
            "destination": {
                "protocol": "HTTP",
                "URI": "http://sandbox.localdomain:{port}/logs",
                "method": "PUT",
            },
        }
    )
    env = {"PROBE_EXT_TELEMETRY": body, "PROBE_EXT_API": "logs"}
    with Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extension_dir)) as sandbox:
        result = sandbox.invoke({"lines": 1})
    records = read_records(tmp_path / "fn-tmp", "ext-probe-ext")
    batches = [r for r in records if r["kind"] == "telemetry"]
    assert batches and all(r["method"] == "PUT" and r["path"] == "/logs" for r in batches)
    types = [e["type"] for r in batches for e in r["batch"]]
    assert "platform.initStart" not in types and "platform.runtimeDone" not in types
    assert "platform.logsSubscription" in types and "platform.end" in types and "function" in types
    end = next(e for r in batches for e in r["batch"] if e["type"] == "platform.end")
    assert end["record"] == {"requestId": result.request_id}
