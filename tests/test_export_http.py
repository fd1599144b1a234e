"""The http exporter: gzipped JSON batches, headers from settings, honest failures."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import pytest

from fixtures import batch_bodies, telemetry_files
from http_receiver import Receiver, Reply
from lambda_wrapper.export import FunctionMetadata, _build
from lambda_wrapper.export.failures import ExportError
from lambda_wrapper.export.http_json import HttpJsonExporter
from lambda_wrapper.log_lines import decode_batch, decode_events
from lambda_wrapper.settings import load

ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_LAMBDA_FUNCTION_VERSION": "3",
    "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_LOG_STREAM_NAME": "stream-1",
}
SECRET = "http-secret-77aa"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def events_from_fixtures() -> list:
    return [
        event
        for path in telemetry_files()
        for body in batch_bodies(path)
        for event in decode_batch(body).events
    ]


def test_batches_arrive_gzipped_with_resource_and_every_event(receiver: Receiver) -> None:
    events = events_from_fixtures()
    exporter = HttpJsonExporter(
        receiver.url("/ingest?source=lambda"), [("Authorization", f"Bearer {SECRET}")], FunctionMetadata(ENV)
    )
    exporter.export(events, time.monotonic() + 5)
    [request] = receiver.requests
    assert request.path == "/ingest?source=lambda"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert exporter.last_body_bytes == len(request.body) < len(gzip.decompress(request.body))
    payload = json.loads(gzip.decompress(request.body))
    assert payload["resource"] == {
        "functionName": "orders",
        "functionVersion": "3",
        "region": "us-east-1",
        "memorySizeMB": 512,
        "logStreamName": "stream-1",
        "exporter": "lambda-wrapper/0.1.0",
    }
    # Every event as decoded; reports also carry the invocation's classification.
    reports = [event for event in payload["events"] if event["type"] == "platform.report"]
    classified = [set(report["invocation"]) for report in reports]
    assert classified and all(keys >= {"status", "failed", "coldStart"} for keys in classified)
    as_decoded = [{k: v for k, v in event.items() if k != "invocation"} for event in payload["events"]]
    assert as_decoded == json.loads(json.dumps([event.to_output() for event in events]))


def test_own_records_and_odd_values_are_encoded(receiver: Receiver) -> None:
    events = decode_events(
        [
            {
                "time": "2024-05-01T10:00:00.000Z",
                "type": "lambda_wrapper.invocation",
                "record": {"requestId": "r", "coldStart": True, "handlerDurationMs": float("nan")},
            },
            {"time": "2024-05-01T10:00:00.000Z", "type": "function", "record": "caf\u00e9 \ud83d\n"},
        ]
    ).events
    HttpJsonExporter(receiver.url(), metadata=FunctionMetadata(ENV)).export(events, time.monotonic() + 5)
    payload = json.loads(gzip.decompress(receiver.requests[0].body), parse_constant=_not_json)
    assert payload["events"][0]["record"]["handlerDurationMs"] == "nan"
    assert payload["events"][1]["message"] == "café ?"  # a lone surrogate cannot be UTF-8


def _not_json(name: str) -> object:
    raise AssertionError(f"{name} is not JSON")


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (403, False), (404, False)],
)
def test_failures_are_classified_and_never_show_the_headers(
    receiver: Receiver, status: int, retryable: bool
) -> None:
    receiver.reply(Reply(status, body=f"bad token {SECRET}".encode(), headers={"Retry-After": "12"}))
    exporter = HttpJsonExporter(receiver.url("/ingest"), [("X-Token", SECRET)], FunctionMetadata(ENV))
    with pytest.raises(ExportError) as caught:
        exporter.export(
            decode_events([{"time": "t", "type": "function", "record": "x"}]).events, time.monotonic() + 5
        )
    error = caught.value
    assert error.retryable is retryable
    assert error.retry_after_s == (12.0 if retryable else None)
    assert SECRET not in error.message and SECRET not in repr(error)
    assert error.message.startswith(f"http: HTTP {status} from http://127.0.0.1:")


def test_nothing_is_sent_for_an_empty_batch(receiver: Receiver) -> None:
    HttpJsonExporter(receiver.url()).export([], time.monotonic() + 5)
    assert not receiver.requests


def test_registry_builds_http_from_settings(receiver: Receiver) -> None:
    built = _build(
        "http",
        load(
            {
                "LAMBDA_WRAPPER_HTTP_ENDPOINT": receiver.url("/x"),
                "LAMBDA_WRAPPER_HTTP_HEADERS": f"x-token={SECRET}",
            }
        ),
    )
    assert isinstance(built, HttpJsonExporter)
    built.export(
        decode_events([{"time": "t", "type": "function", "record": "x"}]).events, time.monotonic() + 5
    )
    assert receiver.requests[0].headers["x-token"] == SECRET
    with pytest.raises(ValueError, match="LAMBDA_WRAPPER_HTTP_ENDPOINT is not set"):
        _build("http", load({}))
    # An invalid setting already switched the exporter off (and said so): no exporter, no second line.
    assert _build("http", load({"LAMBDA_WRAPPER_HTTP_ENDPOINT": "ftp://x"})) is None
    assert (
        _build(
            "http",
            load({"LAMBDA_WRAPPER_HTTP_ENDPOINT": receiver.url(), "LAMBDA_WRAPPER_HTTP_HEADERS": "novalue"}),
        )
        is None
    )
