"""The parts of downstream-call instrumentation that need no library: the import hook, URL
redaction, the setting, the X-Ray documents and datagrams, the OTLP parent of Init calls."""

from __future__ import annotations

import importlib
import json
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from lambda_wrapper.export.otlp_traces import SpanEncoder, TraceContexts
from lambda_wrapper.export.xray import HEADER, MAX_DATAGRAM_BYTES, XrayExporter, daemon_address, subsegment
from lambda_wrapper.instruments import SPAN, own_event
from lambda_wrapper.instruments import calls as hook
from lambda_wrapper.instruments.calls.spans import redact_url
from lambda_wrapper.log_lines import decode_events
from lambda_wrapper.settings import Settings
from lambda_wrapper.telemetry import TelemetryEvent

HEADER_SAMPLED = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture()
def package(tmp_path: Path) -> Iterator[str]:
    """A real package on sys.path with two modules, removed afterwards."""
    name = f"hooked_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "client.py").write_text("VALUE = 1\n")
    (root / "broken.py").write_text("raise RuntimeError('broken at import')\n")
    sys.path.insert(0, str(tmp_path))
    yield name
    sys.path.remove(str(tmp_path))
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_hook_calls_back_after_the_import_and_leaves_the_module_as_it_was(package: str) -> None:
    calls: list[object] = []
    name = f"{package}.client"
    installed = hook.watch({name: lambda: calls.append(sys.modules[name].VALUE)})
    assert installed in sys.meta_path and calls == []
    module = importlib.import_module(f"{package}.client")
    assert calls == [1]  # after the module's code ran
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__ is not None and module.__spec__.loader is module.__loader__
    assert installed not in sys.meta_path  # nothing left to watch
    importlib.reload(module)
    assert calls == [1]


def test_hook_fires_at_once_for_a_module_already_imported(package: str) -> None:
    importlib.import_module(f"{package}.client")
    calls: list[str] = []
    assert hook.watch({f"{package}.client": lambda: calls.append("now")}) is None
    assert calls == ["now"]


def test_hook_does_not_fire_for_an_import_that_fails(package: str) -> None:
    calls: list[str] = []
    installed = hook.watch({f"{package}.broken": lambda: calls.append("fired")})
    with pytest.raises(RuntimeError, match="broken at import"):
        importlib.import_module(f"{package}.broken")
    assert calls == [] and installed in sys.meta_path
    assert installed is not None
    hook.remove(installed)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://example.com/a?b=1", "https://example.com/a?b=1"),
    ("https://user:pw@example.com:8443/a", "https://REDACTED:REDACTED@example.com:8443/a"),
    ("https://u@example.com", "https://REDACTED:REDACTED@example.com"),
    ("https://example.com/p@th?x=1", "https://example.com/p@th?x=1"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F&X-Amz-Signature=abc&X-Amz-Security-Token=tok&v=2",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"
     "&X-Amz-Security-Token=REDACTED&v=2"),
    ("http://h/x?sig=1&Signature=2#frag", "http://h/x?sig=REDACTED&Signature=REDACTED#frag"),
    ("/relative?AWSAccessKeyId=AKIA", "/relative?AWSAccessKeyId=REDACTED"),
])
def test_url_full_never_carries_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_instrument_setting_all_unknown_names_and_nothing() -> None:
    assert Settings({"LAMBDA_WRAPPER_INSTRUMENT": "all"}).instrument == (
        "botocore", "urllib3", "requests", "http.client")
    partly = Settings({"LAMBDA_WRAPPER_INSTRUMENT": "requests,boto,urllib3"})
    assert partly.instrument == ("requests", "urllib3")
    assert [problem.describe() for problem in partly.problems] == [
        "LAMBDA_WRAPPER_INSTRUMENT='requests,boto,urllib3' is invalid (accepted: comma list of "
        "botocore|urllib3|requests|http.client, or all); the unknown entries are ignored"
    ]
    nothing = Settings({"LAMBDA_WRAPPER_INSTRUMENT": "boto"})
    assert nothing.instrument == () and not nothing.feature_enabled("call instrumentation")
    assert Settings({}).instrument == () and not Settings({}).instrument_propagate


def span_record(**overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "name": "S3.GetObject", "kind": "client", "instrumentation": "botocore", "spanId": "0123456789abcdef",
        "requestId": "r1", "phase": "invoke", "traceHeader": HEADER_SAMPLED,
        "startEpochMs": 1_700_000_000_000.5, "durationMs": 12.5,
        "attributes": {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": "GetObject",
                       "cloud.region": "eu-west-1", "aws.request_id": "REQ", "retry_attempts": 2,
                       "http.response.status_code": 429, "aws.s3.bucket": "b"},
    }
    record.update(overrides)
    return record


def test_subsegment_of_an_aws_call() -> None:
    document = subsegment(span_record(error="throttled"))
    assert document == {
        "name": "S3", "id": "0123456789abcdef", "trace_id": "1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
        "parent_id": "53995c3f42cd8ad8", "type": "subsegment", "start_time": 1_700_000_000.0005,
        "end_time": 1_700_000_000.013, "namespace": "aws", "http": {"response": {"status": 429}},
        "aws": {"operation": "GetObject", "region": "eu-west-1", "request_id": "REQ", "retries": 2,
                "bucket_name": "b"},
        "error": True, "throttle": True,
    }


@pytest.mark.parametrize("header", [
    None, "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=53995c3f42cd8ad8;Sampled=0",
    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1", "Root=garbage;Parent=53995c3f42cd8ad8;Sampled=1",
])
def test_no_subsegment_outside_a_sampled_invocation(header: str | None) -> None:
    assert subsegment(span_record(traceHeader=header)) is None


@pytest.mark.parametrize(("value", "address"), [
    ("", ("127.0.0.1", 2000)),
    ("169.254.79.129:2000", ("169.254.79.129", 2000)),
    ("tcp:127.0.0.1:2000 udp:127.0.0.2:2001", ("127.0.0.2", 2001)),
    ("udp:127.0.0.2:2001 tcp:127.0.0.1:2000", ("127.0.0.2", 2001)),
])
def test_daemon_address(value: str, address: tuple[str, int]) -> None:
    assert daemon_address({"AWS_XRAY_DAEMON_ADDRESS": value}) == address


@pytest.mark.parametrize("value", ["localhost", "tcp:127.0.0.1:2000", "127.0.0.1:99999", "127.0.0.1:x"])
def test_daemon_address_without_udp_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="AWS_XRAY_DAEMON_ADDRESS"):
        daemon_address({"AWS_XRAY_DAEMON_ADDRESS": value})


def test_xray_sends_one_datagram_per_span_and_drops_what_does_not_fit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(2)
        exporter = XrayExporter(daemon.getsockname())
        huge = span_record(spanId="fedcba9876543210",
                           attributes={"http.request.method": "GET", "url.full": "http://h/" + "x" * 70_000})
        events = [
            own_event(SPAN, span_record(), "r1"),
            own_event(SPAN, huge, "r1"),
            own_event(SPAN, span_record(traceHeader=None, requestId=None, phase="init"), None),
            own_event("lambda_wrapper.invocation", {"requestId": "r1"}, "r1"),
        ]
        exporter.export(events, deadline=0.0)
        datagram = daemon.recv(70_000)
        assert datagram.startswith(HEADER) and len(datagram) <= MAX_DATAGRAM_BYTES
        assert json.loads(datagram[len(HEADER):])["id"] == "0123456789abcdef"
        daemon.settimeout(0.2)
        with pytest.raises(TimeoutError):
            daemon.recv(70_000)
    assert (exporter.sent, exporter.dropped, exporter.not_sampled) == (1, 1, 1)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["tooLarge"], line["dropped"]) for line in lines] == [("xray_dropped", 1, 1)]


def event(
    type_: str, record: Mapping[str, object], time_: str = "2024-05-01T10:00:00.000Z"
) -> TelemetryEvent:
    return decode_events([{"time": time_, "type": type_, "record": record}]).events[0]


def test_an_init_call_is_a_child_of_the_init_span_whichever_comes_first() -> None:
    encoder = SpanEncoder(TraceContexts(), "fn")
    init_call = event(SPAN, span_record(requestId=None, phase="init", traceHeader=None,
                                        startEpochMs=1_714_557_600_010.0))
    first = encoder.encode([init_call])  # the platform's initStart has not arrived yet
    phase = {"initializationType": "on-demand", "phase": "init"}
    encoder.commit(first)
    later = encoder.encode([
        event("platform.initStart", phase),
        event("platform.initRuntimeDone", {**phase, "status": "success"}, "2024-05-01T10:00:00.200Z"),
        event("platform.initReport", {**phase, "status": "success", "metrics": {"durationMs": 200.0}},
              "2024-05-01T10:00:00.200Z"),
    ])
    (call,) = first.items
    init = next(span for span in later.items if span["name"] == "aws.lambda.init")
    assert (call["traceId"], call["parentSpanId"]) == (init["traceId"], init["spanId"])
    assert call["kind"] == 3 and call["spanId"] == "0123456789abcdef"
    assert init["startTimeUnixNano"] == "1714557600000000000"


def test_an_invocation_call_is_a_child_of_the_invocation_span_in_the_x_ray_trace() -> None:
    contexts = TraceContexts()
    encoder = SpanEncoder(contexts, "fn")
    tracing = {"type": "X-Amzn-Trace-Id", "value": HEADER_SAMPLED}
    done = {"requestId": "r1", "status": "success", "metrics": {"durationMs": 50.0}}
    events = [
        event(SPAN, span_record(startEpochMs=1_714_557_600_010.0, error="HTTP 429")),
        event("platform.start", {"requestId": "r1", "tracing": tracing}),
        event("platform.runtimeDone", done, "2024-05-01T10:00:00.050Z"),
    ]
    contexts.learn(events)  # as the otlp exporter does before encoding
    batch = encoder.encode(events)
    invocation = next(span for span in batch.items if span["kind"] == 2)
    call = next(span for span in batch.items if span["kind"] == 3)
    assert invocation["traceId"] == call["traceId"] == "5bef4de7ad49b0e87f6ef6c87fc2e700"
    assert invocation["parentSpanId"] == "53995c3f42cd8ad8"
    assert call["parentSpanId"] == invocation["spanId"]
    assert call["status"] == {"code": 2, "message": "HTTP 429"}
