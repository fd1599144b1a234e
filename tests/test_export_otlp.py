"""The otlp exporter: every payload parses as OTLP, ids follow X-Ray, delivery is honest."""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fixtures import batch_bodies, telemetry_files
from garbage import cyclic_garbage, type_names
from http_receiver import Receiver, Reply
from lambda_wrapper.export import FunctionMetadata, _build, otlp_encoding
from lambda_wrapper.export.failures import ExportError
from lambda_wrapper.export.otlp import OtlpExporter, SignalTarget, signal_targets
from lambda_wrapper.export.otlp_encoding import SCOPE, any_value, any_value_json
from lambda_wrapper.export.otlp_logs import LogEncoder, _log_record, _text_message
from lambda_wrapper.export.otlp_traces import TraceContexts, parse_xray_header
from lambda_wrapper.export.transport import Endpoint, HttpResponse, Transport, json_body
from lambda_wrapper.log_lines import decode_batch, decode_events
from lambda_wrapper.settings import load
from lambda_wrapper.telemetry import TelemetryEvent

MESSAGES: dict[str, type[Message]] = {
    "/v1/logs": ExportLogsServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/traces": ExportTraceServiceRequest,
}
ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_LAMBDA_FUNCTION_VERSION": "7",
    "AWS_REGION": "eu-west-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/07/[7]002cf",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
}
XRAY = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=53995c3f42cd8ad8;Sampled=1"
SECRET = "otlp-key-5e4d3c2b1a"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def exporter_for(receiver: Receiver, **target_options: object) -> OtlpExporter:
    targets = {
        signal: SignalTarget(receiver.url(f"/v1/{signal}"), **target_options)  # type: ignore[arg-type]
        for signal in ("logs", "metrics", "traces")
    }
    return OtlpExporter(targets, FunctionMetadata(ENV))


def parsed(receiver: Receiver) -> dict[str, list[dict]]:
    """Every payload received, checked with the protobuf JSON parser, then as plain JSON."""
    payloads: dict[str, list[dict]] = {}
    for request in receiver.requests:
        body = (
            gzip.decompress(request.body)
            if request.headers.get("content-encoding") == "gzip"
            else request.body
        )
        json_format.Parse(body, MESSAGES[request.path]())  # unknown fields or wrong types fail here
        payloads.setdefault(request.path.rsplit("/", 1)[1], []).append(json.loads(body))
    return payloads


def items(payloads: dict[str, list[dict]], signal: str) -> list[dict]:
    keys = {
        "logs": ("resourceLogs", "scopeLogs", "logRecords"),
        "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
        "traces": ("resourceSpans", "scopeSpans", "spans"),
    }[signal]
    return [
        item
        for payload in payloads.get(signal, [])
        for resource in payload[keys[0]]
        for scope in resource[keys[1]]
        for item in scope[keys[2]]
    ]


def ev(type_: str, record: object, time_: str = "2024-05-01T10:00:00.000Z") -> TelemetryEvent:
    return decode_events([{"time": time_, "type": type_, "record": record}]).events[0]


def attrs(item: dict) -> dict[str, object]:
    return {
        kv["key"]: next(iter(kv["value"].values())) if kv["value"] else None
        for kv in item.get("attributes", [])
    }


def fixture_events() -> list[TelemetryEvent]:
    return [
        event
        for path in telemetry_files()
        for body in batch_bodies(path)
        for event in decode_batch(body).events
    ]


def invocation(request_id: str, start: str, end: str, tracing: str | None = XRAY) -> list[TelemetryEvent]:
    trace = {"tracing": {"type": "X-Amzn-Trace-Id", "value": tracing}} if tracing else {}
    return [
        ev(
            "platform.start",
            {
                "requestId": request_id,
                "version": "7",
                "functionArn": "arn:aws:lambda:eu-west-1:1:function:orders",
                **trace,
            },
            start,
        ),
        ev("function", f"[INFO]\t{start}\t{request_id}\tprocessing order\n", start),
        ev("function", "print without a prefix\n", start),
        ev(
            "function",
            {
                "timestamp": start,
                "level": "ERROR",
                "message": "card declined",
                "requestId": request_id,
                "logger": "shop",
                "extra": {"amount": 12.5, "items": [1, 2]},
            },
            start,
        ),
        ev(
            "lambda_wrapper.invocation",
            {
                "requestId": request_id,
                "coldStart": False,
                "proactiveInit": False,
                "handlerDurationMs": 40.0,
                "wrapperOverheadMs": 0.3,
                "errorType": None,
                "process": {"rssMB": 60.5, "threads": 3},
            },
            end,
        ),
        ev(
            "platform.runtimeDone",
            {
                "requestId": request_id,
                "status": "success",
                "metrics": {"durationMs": 42.5, "producedBytes": 10},
                "spans": [{"name": "responseLatency", "start": start, "durationMs": 41.0}],
                **trace,
            },
            end,
        ),
    ]


def test_every_payload_from_the_fixtures_parses_as_otlp(receiver: Receiver) -> None:
    exporter = exporter_for(receiver)
    exporter.export(fixture_events(), time.monotonic() + 5)
    payloads = parsed(receiver)
    assert set(payloads) == {"logs", "metrics", "traces"}
    spans = items(payloads, "traces")
    invocation_spans = [s for s in spans if s["name"] == "orders"]
    assert {attrs(s)["faas.invocation_id"] for s in invocation_spans} >= {
        "0a3e4c5b-7d21-4f6e-9b8a-2c1d0e9f8a7b",
        "b7c1e2d3-4f5a-46b7-8c9d-0e1f2a3b4c5d",
    }
    fixture_span = next(s for s in invocation_spans if str(attrs(s)["faas.invocation_id"]).startswith("b7c1"))
    assert fixture_span["traceId"] == "65d4b0a50a1b2c3d4e5f60718293a4b5"
    assert fixture_span["parentSpanId"] == "3c4d5e6f70819203"
    assert any(s["name"] == "aws.lambda.init" for s in spans)
    assert any(s["name"] == "responseLatency" and s["parentSpanId"] == fixture_span["spanId"] for s in spans)
    logs = items(payloads, "logs")
    assert len(logs) == sum(e.type in ("function", "extension") for e in fixture_events())


def test_trace_ids_come_from_the_xray_header_and_logs_share_them(receiver: Receiver) -> None:
    exporter = exporter_for(receiver)
    exporter.export(
        invocation("req-1", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z"), time.monotonic() + 5
    )
    payloads = parsed(receiver)
    span = next(s for s in items(payloads, "traces") if s["name"] == "orders")
    assert span["traceId"] == "5bef4de7ad49b0e87f6ef6c87fc2e700"
    assert span["parentSpanId"] == "53995c3f42cd8ad8"
    assert len(span["spanId"]) == 16 and span["spanId"] != "53995c3f42cd8ad8"
    assert span["kind"] == 2 and "status" not in span
    assert (span["startTimeUnixNano"], span["endTimeUnixNano"]) == (
        "1714557600000000000",
        "1714557600042500000",
    )
    span_attrs = attrs(span)
    assert span_attrs["faas.invocation_id"] == "req-1" and span_attrs["faas.coldstart"] is False
    assert span_attrs["cloud.resource_id"] == "arn:aws:lambda:eu-west-1:1:function:orders"
    assert "faas.trigger" not in span_attrs
    logs = items(payloads, "logs")
    assert len(logs) == 3
    for log in logs:
        assert (log["traceId"], log["spanId"]) == (span["traceId"], span["spanId"])
        assert attrs(log)["faas.invocation_id"] == "req-1"  # the prefix-less line too: the current invocation
    text, plain, structured = logs
    assert (text["severityNumber"], text["severityText"]) == (9, "INFO")
    assert text["body"] == {"stringValue": "processing order"}
    assert "severityNumber" not in plain and plain["body"] == {"stringValue": "print without a prefix"}
    assert structured["severityNumber"] == 17
    body = {kv["key"]: kv["value"] for kv in structured["body"]["kvlistValue"]["values"]}
    assert body["message"] == {"stringValue": "card declined"}
    assert body["extra"]["kvlistValue"]["values"][0] == {"key": "amount", "value": {"doubleValue": 12.5}}


def test_an_invocation_spanning_batches_becomes_one_span(receiver: Receiver) -> None:
    exporter = exporter_for(receiver)
    first, second = invocation("req-2", "2024-05-01T10:00:01.000Z", "2024-05-01T10:00:01.050Z", tracing=None)[
        ::5
    ]
    exporter.export([first], time.monotonic() + 5)
    exporter.export([second], time.monotonic() + 5)
    report = ev(
        "platform.report",
        {
            "requestId": "req-2",
            "status": "success",
            "metrics": {
                "durationMs": 43.0,
                "billedDurationMs": 44,
                "memorySizeMB": 256,
                "maxMemoryUsedMB": 70,
            },
            "spans": [{"name": "extensionOverhead", "start": "2024-05-01T10:00:01.045Z", "durationMs": 1.0}],
        },
        "2024-05-01T10:00:05.000Z",
    )
    exporter.export([report], time.monotonic() + 5)
    spans = items(parsed(receiver), "traces")
    main = [s for s in spans if s["name"] == "orders"]
    assert len(main) == 1, "runtimeDone ends the span; the report must not add a second one"
    assert main[0]["startTimeUnixNano"] == "1714557601000000000"
    assert main[0]["endTimeUnixNano"] == "1714557601042500000"
    assert "parentSpanId" not in main[0] and main[0]["traceId"].strip("0")
    overhead = next(s for s in spans if s["name"] == "extensionOverhead")
    assert (overhead["traceId"], overhead["parentSpanId"]) == (main[0]["traceId"], main[0]["spanId"])


def test_a_report_without_runtime_done_ends_the_span_with_its_status(receiver: Receiver) -> None:
    exporter = exporter_for(receiver)
    exporter.export(
        [
            ev("platform.start", {"requestId": "req-3"}, "2024-05-01T10:00:00.000Z"),
            ev(
                "platform.report",
                {
                    "requestId": "req-3",
                    "status": "timeout",
                    "errorType": "Sandbox.Timedout",
                    "metrics": {
                        "durationMs": 3000.0,
                        "billedDurationMs": 3000,
                        "memorySizeMB": 256,
                        "maxMemoryUsedMB": 256,
                    },
                },
                "2024-05-01T10:00:03.001Z",
            ),
        ],
        time.monotonic() + 5,
    )
    payloads = parsed(receiver)
    span = next(s for s in items(payloads, "traces") if s["name"] == "orders")
    assert span["status"] == {"code": 2, "message": "Sandbox.Timedout"}
    assert span["endTimeUnixNano"] == "1714557603000000000"
    sums = {m["name"]: m["sum"]["dataPoints"][0] for m in items(payloads, "metrics") if "sum" in m}
    assert sums["faas.timeouts"]["asInt"] == "1" and sums["faas.errors"]["asInt"] == "1"
    assert sums["aws.lambda.out_of_memory"]["asInt"] == "1"  # max memory used reached the memory size


def test_init_span_uses_the_init_report_duration(receiver: Receiver) -> None:
    exporter = exporter_for(receiver)
    exporter.export(
        [
            ev(
                "platform.initStart",
                {"initializationType": "on-demand", "phase": "init"},
                "2024-05-01T09:59:59.000Z",
            ),
            ev(
                "platform.initRuntimeDone",
                {
                    "initializationType": "on-demand",
                    "status": "error",
                    "errorType": "Runtime.ImportModuleError",
                },
                "2024-05-01T09:59:59.300Z",
            ),
            ev(
                "platform.initReport",
                {"initializationType": "on-demand", "phase": "init", "metrics": {"durationMs": 250.25}},
                "2024-05-01T09:59:59.301Z",
            ),
        ],
        time.monotonic() + 5,
    )
    span = next(s for s in items(parsed(receiver), "traces") if s["name"] == "aws.lambda.init")
    assert span["endTimeUnixNano"] == "1714557599250250000"
    assert span["status"]["message"] == "Runtime.ImportModuleError"
    assert attrs(span)["aws.lambda.initialization_type"] == "on-demand"


def test_metrics_carry_units_and_delta_intervals(receiver: Receiver) -> None:
    exporter = exporter_for(receiver)
    events = invocation("req-4", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z")
    events.append(
        ev(
            "platform.report",
            {
                "requestId": "req-4",
                "status": "success",
                "metrics": {
                    "durationMs": 43.5,
                    "billedDurationMs": 44,
                    "memorySizeMB": 256,
                    "maxMemoryUsedMB": 70,
                    "initDurationMs": 120.0,
                },
            },
            "2024-05-01T10:00:00.100Z",
        )
    )
    events.append(
        ev(
            "platform.logsDropped",
            {"droppedRecords": 5, "droppedBytes": 900, "reason": "slow"},
            "2024-05-01T10:00:00.200Z",
        )
    )
    exporter.export(events, time.monotonic() + 5)
    later = ev(
        "platform.report", {"requestId": "req-5", "metrics": {"durationMs": 2.0}}, "2024-05-01T10:01:00.000Z"
    )
    exporter.export([later], time.monotonic() + 5)
    first, second = (items({"metrics": [payload]}, "metrics") for payload in parsed(receiver)["metrics"])
    metrics = {m["name"]: m for m in first}
    memory = metrics["aws.lambda.max_memory_used"]
    assert memory["unit"] == "By" and memory["gauge"]["dataPoints"][0]["asDouble"] == 70 * 1024 * 1024
    duration = metrics["aws.lambda.duration"]["gauge"]["dataPoints"][0]
    assert duration["asDouble"] == 43.5 and attrs(duration)["faas.coldstart"] is False  # our record says warm
    assert metrics["lambda_wrapper.overhead"]["unit"] == "ms"
    assert (
        metrics["lambda_wrapper.process.memory.rss"]["gauge"]["dataPoints"][0]["asDouble"]
        == 60.5 * 1024 * 1024
    )
    invocations = metrics["faas.invocations"]["sum"]
    assert invocations["aggregationTemporality"] == 1 and invocations["isMonotonic"] is True
    assert metrics["aws.lambda.logs_dropped"]["sum"]["dataPoints"][0]["asInt"] == "5"
    first_end = invocations["dataPoints"][0]["timeUnixNano"]
    following = {m["name"]: m for m in second}["faas.invocations"]["sum"]["dataPoints"][0]
    assert following["startTimeUnixNano"] == first_end, "delta intervals must follow each other"


def test_resource_attributes_and_overrides(receiver: Receiver) -> None:
    settings = load(
        {
            **ENV,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url(),
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored,team=a%20b",
        }
    )
    exporter = OtlpExporter.from_settings(settings, {**ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url()})
    exporter.export(
        invocation("req-6", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z"), time.monotonic() + 5
    )
    payloads = parsed(receiver)
    assert {r.path for r in receiver.requests} == {"/v1/logs", "/v1/metrics", "/v1/traces"}
    resource = attrs(payloads["traces"][0]["resourceSpans"][0]["resource"])
    assert resource["service.name"] == "checkout"
    assert (resource["cloud.provider"], resource["cloud.platform"], resource["cloud.region"]) == (
        "aws",
        "aws_lambda",
        "eu-west-1",
    )
    assert (resource["faas.name"], resource["faas.version"], resource["faas.instance"]) == (
        "orders",
        "7",
        "2025/01/07/[7]002cf",
    )
    assert resource["faas.max_memory"] == str(256 * 1024 * 1024)  # intValue is a string in JSON
    assert resource["deployment.environment"] == "prod" and resource["team"] == "a b"


def test_per_signal_variables(receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/base/",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=1",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url("/custom/traces"),
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-key={SECRET}",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": f"broken{SECRET}",
    }
    targets = signal_targets(load(env), env)
    assert set(targets) == {"metrics", "traces"}, "invalid logs headers switch the logs signal off"
    err = capsys.readouterr().err
    assert "OTEL_EXPORTER_OTLP_LOGS_HEADERS" in err and SECRET not in err
    assert targets["metrics"].endpoint.target == "/base/v1/metrics" and targets["metrics"].gzip
    assert targets["metrics"].headers == (("a", "1"),)
    traces = targets["traces"]
    assert traces.endpoint.target == "/custom/traces", "a per-signal endpoint is used as it is"
    assert traces.headers == (("x-key", SECRET),) and traces.timeout_s == 1.5 and not traces.gzip


def test_gzip_compression_is_sent_and_parses(receiver: Receiver) -> None:
    exporter = exporter_for(receiver, gzip=True)
    exporter.export(fixture_events(), time.monotonic() + 5)
    assert all(r.headers["content-encoding"] == "gzip" for r in receiver.requests)
    assert set(parsed(receiver)) == {"logs", "metrics", "traces"}


@pytest.mark.parametrize("lines", [1, 3])
def test_the_logs_body_is_its_request_as_json_body_writes_it(receiver: Receiver, lines: int) -> None:
    # The logs body is spliced from JSON texts: it must be, to the byte, what ``json_body``
    # makes of the request it holds, and hold the resource, the scope and every record.
    exporter = exporter_for(receiver)
    messages = ["plain\n", "ünïcödé ✓\n", "lone \ud800 surrogate\n"][:lines]
    exporter.export([ev("function", message) for message in messages], time.monotonic() + 5)
    (request,) = [request for request in receiver.requests if request.path == "/v1/logs"]
    sent = json.loads(request.body)
    assert request.body == json_body(sent)
    (resource_logs,) = sent["resourceLogs"]
    assert resource_logs["resource"] == json.loads(json_body(exporter._resource))
    (scope_logs,) = resource_logs["scopeLogs"]
    assert scope_logs["scope"] == SCOPE
    bodies = [record["body"]["stringValue"] for record in scope_logs["logRecords"]]
    assert bodies == [message.rstrip("\n").replace("\ud800", "?") for message in messages]


def test_a_retryable_failure_of_one_signal_does_not_duplicate_the_others(receiver: Receiver) -> None:
    exporter = exporter_for(receiver, headers=[("x-api-key", SECRET)])
    events = invocation("req-7", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z")
    receiver.reply(Reply(200), Reply(503, body=f"overloaded {SECRET}".encode(), headers={"Retry-After": "3"}))
    with pytest.raises(ExportError) as caught:
        exporter.export(events, time.monotonic() + 5)  # metrics OK, traces 503, logs OK
    error = caught.value
    assert error.retryable and error.retry_after_s == 3.0
    assert "otlp traces" in error.message and SECRET not in error.message and "<redacted>" in error.message
    assert [r.path for r in receiver.requests] == ["/v1/metrics", "/v1/traces", "/v1/logs"]
    exporter.export(events, time.monotonic() + 5)  # the pipeline retries the same events
    assert [r.path for r in receiver.requests][3:] == ["/v1/traces"]
    spans = items({"traces": [json.loads(receiver.requests[3].body)]}, "traces")
    assert any(s["name"] == "orders" for s in spans), "the retried span is the one that failed"
    later = ev("function", "[INFO]\t2024-05-01T10:00:02.000Z\treq-8\tnext\n", "2024-05-01T10:00:02.000Z")
    exporter.export([later], time.monotonic() + 5)
    assert [r.path for r in receiver.requests][4:] == ["/v1/logs"]


def test_otlp_status_rules(receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    exporter = exporter_for(receiver)
    events = invocation("req-9", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z")
    receiver.reply(Reply(500), Reply(500), Reply(500))
    with pytest.raises(ExportError) as caught:
        exporter.export(events, time.monotonic() + 5)
    assert not caught.value.retryable, "OTLP/HTTP: only 429, 502, 503 and 504 may be retried"
    receiver.reply(Reply(400), Reply(200), Reply(200))
    exporter.export(events, time.monotonic() + 5)  # two of three delivered: not an error of the batch
    assert "otlp metrics" in capsys.readouterr().err
    receiver.reply(Reply(400), Reply(429), Reply(200))
    with pytest.raises(ExportError) as caught:
        exporter.export(events, time.monotonic() + 5)
    assert caught.value.retryable
    count = len(receiver.requests)
    exporter.export(events, time.monotonic() + 5)
    assert [r.path for r in receiver.requests][count:] == ["/v1/traces"], "rejected metrics are not resent"


def test_an_unreachable_collector_is_retryable_within_the_deadline() -> None:
    exporter = OtlpExporter({"traces": SignalTarget("http://127.0.0.1:9/v1/traces")}, FunctionMetadata(ENV))
    started = time.monotonic()
    with pytest.raises(ExportError) as caught:
        exporter.export(
            invocation("req-10", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z"),
            time.monotonic() + 0.5,
        )
    assert caught.value.retryable and time.monotonic() - started < 0.6


def test_failed_exports_leave_no_cycles_holding_the_payload(receiver: Receiver) -> None:
    # A kept exception holds its traceback's frames and their payload: on every failed
    # flush that was a cycle, and the 128 MB soak's RSS grew ~10 MB with it.
    exporter = exporter_for(receiver)
    unreachable = OtlpExporter(
        {"traces": SignalTarget("http://127.0.0.1:9/v1/traces")}, FunctionMetadata(ENV)
    )
    events = invocation("req-11", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.045Z")
    for target in (exporter, unreachable):  # warm-up: lazy imports make cycles of their own
        with contextlib.suppress(ExportError):
            receiver.reply(Reply(503), Reply(503), Reply(503))
            target.export(events, time.monotonic() + 1)
    with cyclic_garbage() as garbage:
        for _ in range(3):
            receiver.reply(Reply(503), Reply(200), Reply(503, headers={"Retry-After": "1"}))
            with pytest.raises(ExportError):
                exporter.export(events, time.monotonic() + 1)
            with pytest.raises(ExportError):
                unreachable.export(events, time.monotonic() + 1)
            with pytest.raises(ExportError):
                exporter.export(events, time.monotonic() - 1)  # out of time before sending
    assert len(receiver.requests) >= 9
    assert not type_names(garbage) & {"TelemetryEvent", "frame", "traceback"}, sorted(type_names(garbage))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (XRAY, ("5bef4de7ad49b0e87f6ef6c87fc2e700", "53995c3f42cd8ad8")),
        ("Root=1-5BEF4DE7-AD49B0E87F6EF6C87FC2E700", ("5bef4de7ad49b0e87f6ef6c87fc2e700", None)),
        (
            "Parent=53995c3f42cd8ad8; Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
            ("5bef4de7ad49b0e87f6ef6c87fc2e700", "53995c3f42cd8ad8"),
        ),
        ("Root=2-5bef4de7-ad49b0e87f6ef6c87fc2e700", (None, None)),
        ("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e7zz;Parent=xyz", (None, None)),
        ("Root=1-00000000-000000000000000000000000;Parent=0000000000000000", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_xray_header(value: str | None, expected: tuple[str | None, str | None]) -> None:
    assert parse_xray_header(value) == expected


def test_registry(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())
    built = _build("otlp", load({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url()}))
    assert isinstance(built, OtlpExporter) and built.signals == ("metrics", "traces", "logs")
    assert _build("otlp", load({"OTEL_EXPORTER_OTLP_HEADERS": "no-equals-sign"})) is None
    default = signal_targets(load({}), {})
    assert default["logs"].endpoint.origin == "http://localhost:4318"
    assert default["logs"].endpoint.target == "/v1/logs" and default["logs"].timeout_s == 10.0


def test_otlp_modules_import_cheaply() -> None:
    code = (
        "import sys; import lambda_wrapper.export.otlp; "
        "print(','.join(m for m in ('ssl', 'http.client', 'gzip', 'zlib', 'socket', 'email', 'typing', "
        "'dataclasses', 'opentelemetry', 'google.protobuf') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


class CapturingTransport(Transport):
    """Answers 200 to everything and keeps the bodies: for fast property tests."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, bytes]] = []

    def post(
        self, endpoint: Endpoint, body: bytes, content_type: str, deadline: float, **kwargs: Any
    ) -> HttpResponse:
        self.bodies.append((endpoint.target, body))
        return HttpResponse(200, {}, b"{}")


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from([2**63, -(2**63) - 1, 10**400, 1e308, -0.0]),  # past int64, past a double
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)
event_types = st.sampled_from(
    [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.restoreStart",
        "platform.restoreReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
        "platform.logsDropped",
        "function",
        "extension",
        "lambda_wrapper.invocation",
        "lambda_wrapper.init",
        "lambda_wrapper.warning",
        "lambda_wrapper.import_profile",
        "platform.unknownFuture",
    ]
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"requestId": st.sampled_from(["a", "b"])},
        optional={
            "status": json_values,
            "errorType": json_values,
            "metrics": st.dictionaries(
                st.sampled_from(
                    [
                        "durationMs",
                        "billedDurationMs",
                        "memorySizeMB",
                        "maxMemoryUsedMB",
                        "initDurationMs",
                        "producedBytes",
                    ]
                ),
                json_values,
            ),
            "tracing": st.fixed_dictionaries({"value": st.one_of(st.just(XRAY), json_values)}),
            "spans": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": json_values,
                        "start": st.just("2024-05-01T10:00:00.000Z"),
                        "durationMs": json_values,
                    }
                ),
                max_size=2,
            ),
            "process": st.dictionaries(st.sampled_from(["rssMB", "threads"]), json_values),
            "droppedRecords": json_values,
            "coldStart": json_values,
            "stack": json_values,
            "level": json_values,
            "message": json_values,
        },
    ),
)
times = st.sampled_from(
    ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:01.500Z", "not a time", "2022-08-02T12:01:23:521Z"]
)


# Event types that become one OTLP log record each, whatever their record holds.
LOG_RECORD_TYPES = ("function", "extension", "lambda_wrapper.warning", "lambda_wrapper.import_profile")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(event_types, records, times), max_size=8), min_size=1, max_size=3))
def test_any_event_sequence_gives_valid_otlp(batches: list[list[tuple[str, object, str]]]) -> None:
    transport = CapturingTransport()
    targets = {
        signal: SignalTarget(f"http://collector/v1/{signal}") for signal in ("logs", "metrics", "traces")
    }
    exporter = OtlpExporter(targets, FunctionMetadata(ENV), transport=transport)
    log_events = 0
    for batch in batches:
        entries = [{"time": when, "type": kind, "record": record} for kind, record, when in batch]
        events = decode_events(entries).events  # type: ignore[arg-type]
        sent_before = len(transport.bodies)
        exporter.export(events, time.monotonic() + 5)
        batch_logs = sum(event.type in LOG_RECORD_TYPES for event in events)
        log_events += batch_logs
        if batch_logs:
            # Every log line is exportable: this batch must have produced a request.
            assert len(transport.bodies) > sent_before, "a batch with log lines sent nothing"
    log_records = 0
    for path, body in transport.bodies:
        json.loads(body, parse_constant=_not_json)
        json_format.Parse(body, MESSAGES[path]())
        if path == "/v1/logs":
            log_records += len(items({"logs": [json.loads(body)]}, "logs"))
    # What was sent accounts for every log line, once.
    assert log_records == log_events


def _not_json(name: str) -> object:
    raise AssertionError(f"{name} is not JSON")


def test_with_the_real_pipeline_a_partial_failure_is_retried_without_duplicates(
    receiver: Receiver, tmp_path: Path
) -> None:
    from lambda_wrapper.export import Pipeline

    exporter = exporter_for(receiver)
    pipeline = Pipeline([exporter], str(tmp_path), 1 << 20)
    for path in telemetry_files():
        for body in batch_bodies(path):
            pipeline.accept(body)
    receiver.reply(Reply(200), Reply(503))  # metrics delivered, traces refused, logs delivered
    pipeline.flush(budget_s=2.0)
    assert [r.path for r in receiver.requests] == ["/v1/metrics", "/v1/traces", "/v1/logs"]
    breaker = pipeline.channels[0].breaker
    assert breaker is not None  # the refused call opened it
    breaker.open_until = 0.0  # skip the cool-down
    pipeline.flush(budget_s=2.0)
    assert [r.path for r in receiver.requests][3:] == ["/v1/traces"]
    assert set(parsed(receiver)) == {"logs", "metrics", "traces"}


# --- the logs encoder writes JSON text: the same records as the AnyValue dicts ---------------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
              st.text()),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20,
)
LOG_RECORDS = st.one_of(
    st.text(),
    st.builds(lambda level, request_id, rest: f"[{level}]\t2024-05-01T10:00:00.000Z\t{request_id}\t{rest}\n",
              st.sampled_from(["INFO", "ERROR", "WARN", "X"]), st.sampled_from(["req-a", "req-b", ""]),
              st.text()),
    st.dictionaries(st.sampled_from(["message", "level", "requestId", "logger", "extra"]), JSON_VALUES),
)


def any_value_encoded(value: object) -> str:
    """What ``json_body`` makes of ``any_value(value)``."""
    return json.dumps(any_value(value), separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=300)
@given(value=JSON_VALUES)
def test_any_value_json_is_any_value_encoded(value: object) -> None:
    assert any_value_json(value) == any_value_encoded(value)  # to the byte


def test_any_value_json_writes_keys_of_any_kind_and_remembers_a_bounded_number() -> None:
    class Mapping(dict):
        pass

    # 1 and True are one key of a dict, written "1" and "True": only strings are remembered.
    many_keys = {f"key {n}": f"value {n}" for n in range(2 * otlp_encoding._MEMBER_HEADS_LIMIT)}
    values = [{"1": "a"}, {1: "a"}, {True: "b", "x": {"1": [None]}}, Mapping({1: "c", "d": 2.5}), many_keys]
    for value in values:
        assert any_value_json(value) == any_value_encoded(value)
    assert len(otlp_encoding._member_heads) == otlp_encoding._MEMBER_HEADS_LIMIT
    assert all(type(key) is str for key in otlp_encoding._member_heads)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.tuples(st.sampled_from(["function", "extension", "platform.start"]), LOG_RECORDS,
                                st.sampled_from(["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.001Z",
                                                 "x"])),
                      max_size=12))
def test_log_lines_encode_as_their_log_records(lines: list[tuple[str, object, str]]) -> None:
    events = decode_events([{"time": time_, "type": kind, "record": record if kind != "platform.start"
                             else {"requestId": "req-a"}} for kind, record, time_ in lines]).events
    encoder = LogEncoder(TraceContexts())
    batch = encoder.encode(events)
    # What each line must be: the record built from AnyValue dicts, then encoded.
    expected, current = [], None
    for event in events:
        if event.type == "platform.start":
            current = event.request_id
            continue
        request_id = event.request_id or current
        record = event.record
        body = (any_value(record) if isinstance(record, (dict, list))
                else {"stringValue": _text_message(event)})
        log = _log_record(event, "0", event.level, body,
                          [("faas.invocation_id", request_id), ("aws.lambda.telemetry.type", event.type)])
        encoder._add_trace_context(log, request_id)
        expected.append(log)
    got = [json.loads(text) for text in batch.items]
    for log in got:
        log["observedTimeUnixNano"] = "0"
    assert got == json.loads(json.dumps(expected))
    assert [list(log) for log in got] == [list(log) for log in expected]  # the same member order
