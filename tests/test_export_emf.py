"""The emf exporter: every line it writes is a valid EMF document with the right values."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import batch_bodies, telemetry_files
from lambda_wrapper.export import FunctionMetadata, _build
from lambda_wrapper.export import emf as emf_module
from lambda_wrapper.export.emf import EmfExporter
from lambda_wrapper.export.failures import ExportError
from lambda_wrapper.log_lines import decode_batch, decode_events, is_own_diagnostic
from lambda_wrapper.settings import load
from lambda_wrapper.telemetry import TelemetryEvent

TESTS = Path(__file__).resolve().parent
SCHEMA = json.loads((TESTS / "schemas" / "emf.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_REGION": "eu-west-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "STAGE": "prod",
}


PIPE_BUF = 4096


class Lines(io.StringIO):
    """A stream that keeps each write separately, to check that every write is whole lines."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    @property
    def documents(self) -> list[dict]:
        return [document for text in self.writes for document in written(text)]


def written(text: str) -> list[dict]:
    """The documents of one write: whole lines, and no more than a pipe keeps together
    (PIPE_BUF bytes) unless it is one document alone."""
    assert text.endswith("\n"), "a write ends with a whole line"
    lines = text.splitlines(keepends=True)
    assert len(lines) == 1 or len(text.encode()) <= PIPE_BUF, "several documents in one write past PIPE_BUF"
    return [validated(line) for line in lines]


def validated(line: str) -> dict:
    """Parse one written line and check it against the EMF specification."""
    assert line.endswith("\n") and line.count("\n") == 1, "one document per line"
    document = json.loads(line, parse_constant=_reject_constant)
    # Compact JSON, ``_aws`` first, each member once (a repeated key would not survive
    # the round trip): the exporter joins cached text, not a serialised dict.
    assert line == json.dumps(document, separators=(",", ":")) + "\n"
    assert next(iter(document)) == "_aws"
    VALIDATOR.validate(document)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        names = [metric["Name"] for metric in directive["Metrics"]]
        assert len(names) == len(set(names))
        for name in names:
            assert name in document, f"metric {name} has no target member"
            value = document[name]
            values = value if isinstance(value, list) else [value]
            assert len(values) <= 100
            for item in values:
                assert isinstance(item, (int, float)) and not isinstance(item, bool), f"{name}={item!r}"
                assert math.isfinite(item) and abs(item) <= 2**360
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(document.get(key), str), f"dimension {key} has no string target member"
                assert document[key].strip() and document[key].isascii() and len(document[key]) <= 1024
    return document


def _reject_constant(name: str) -> float:
    raise AssertionError(f"{name} is not JSON")


def exporter(stream: Lines, dimensions: tuple[str, ...] = ("FunctionName",), **kwargs: Any) -> EmfExporter:
    return EmfExporter(
        "LambdaWrapper",
        dimensions,
        stream=stream,
        metadata=FunctionMetadata(ENV),
        environ=ENV,
        **kwargs,
    )


def event(type_: str, record: object, time: str = "2024-05-01T10:00:00.000Z") -> TelemetryEvent:
    batch = decode_events([{"time": time, "type": type_, "record": record}])
    return batch.events[0]


def fixture_events() -> list[TelemetryEvent]:
    return [
        event
        for path in telemetry_files()
        for body in batch_bodies(path)
        for event in decode_batch(body).events
    ]


def invocation_sequence() -> list[list[TelemetryEvent]]:
    """Three invocations as they reach the exporter: a cold one, a timeout, an OOM,
    with our own records, a warning and dropped logs; each report one batch late."""
    first, second, third = "req-1", "req-2", "req-3"
    process = {
        "rssMB": 61.5,
        "peakRssMB": 70.25,
        "cpuUserMs": 12,
        "cpuSystemMs": 3,
        "openFds": 9,
        "threads": 4,
        "tmpUsedMB": 0.5,
        "gcCollections": 2,
        "gcPauseMs": 0.8,
    }
    return [
        [
            event("platform.initStart", {"initializationType": "on-demand", "phase": "init"}),
            event(
                "lambda_wrapper.init",
                {
                    "wrapperInitMs": 6.2,
                    "extensionInitMs": 3.1,
                    "handlerImportMs": 41.0,
                    "coldStart": True,
                    "proactiveInit": False,
                },
            ),
            event("platform.start", {"requestId": first}),
            event("platform.runtimeDone", {"requestId": first, "status": "success"}),
            event(
                "lambda_wrapper.invocation",
                {
                    "requestId": first,
                    "coldStart": True,
                    "proactiveInit": False,
                    "handlerDurationMs": 12.5,
                    "wrapperOverheadMs": 0.4,
                    "errorType": None,
                    "process": process,
                    "listenerLagMs": 1.5,
                },
            ),
        ],
        [
            event(
                "platform.report",
                {
                    "requestId": first,
                    "status": "success",
                    "metrics": {
                        "durationMs": 15.2,
                        "billedDurationMs": 16,
                        "memorySizeMB": 128,
                        "maxMemoryUsedMB": 71,
                        "initDurationMs": 210.5,
                    },
                },
            ),
            event("platform.start", {"requestId": second}),
            event(
                "lambda_wrapper.warning",
                {
                    "kind": "timeout_warning",
                    "requestId": second,
                    "message": "1000 ms left",
                    "stack": ["a.py:1"],
                },
            ),
            event("platform.runtimeDone", {"requestId": second, "status": "timeout"}),
            event(
                "lambda_wrapper.invocation",
                {
                    "requestId": second,
                    "coldStart": False,
                    "proactiveInit": False,
                    "handlerDurationMs": 3000.0,
                    "wrapperOverheadMs": 0.3,
                    "errorType": "Sandbox.Timedout",
                },
            ),
        ],
        [
            # An old-style report without status: the runtimeDone says it timed out.
            event(
                "platform.report",
                {
                    "requestId": second,
                    "metrics": {
                        "durationMs": 3000.0,
                        "billedDurationMs": 3000,
                        "memorySizeMB": 128,
                        "maxMemoryUsedMB": 80,
                    },
                },
            ),
            event("platform.logsDropped", {"droppedBytes": 4096, "droppedRecords": 12, "reason": "slow"}),
            event("platform.start", {"requestId": third}),
            event(
                "platform.runtimeDone",
                {"requestId": third, "status": "error", "errorType": "Runtime.OutOfMemory"},
            ),
            event(
                "platform.report",
                {
                    "requestId": third,
                    "status": "error",
                    "metrics": {
                        "durationMs": 50.0,
                        "billedDurationMs": 50,
                        "memorySizeMB": 128,
                        "maxMemoryUsedMB": 128,
                    },
                },
            ),
        ],
    ]


def test_every_line_from_the_fixtures_is_valid_emf() -> None:
    stream = Lines()
    events = fixture_events()
    exporter(stream, ("FunctionName", "FunctionVersion", "ColdStart")).export(events, 0.0)
    documents = stream.documents
    reports = [d for d in documents if "Duration" in d]
    report_events = [e for e in events if e.type == "platform.report" and e.request_id]
    assert len(reports) == len(report_events) > 10
    assert [d["requestId"] for d in reports] == [e.request_id for e in report_events]
    by_request = {d["requestId"]: d for d in reports}
    written = by_request["0a3e4c5b-7d21-4f6e-9b8a-2c1d0e9f8a7b"]
    assert (written["Duration"], written["BilledDuration"], written["MaxMemoryUsed"]) == (113.08, 114, 71)
    timed_out = by_request["e4d3c2b1-a098-4f7e-8d6c-5b4a39281706"]
    assert (timed_out["Timeouts"], timed_out["Errors"]) == (1, 1)
    assert by_request["b7c1e2d3-4f5a-46b7-8c9d-0e1f2a3b4c5d"]["Errors"] == 1
    assert sorted(d["LogsDropped"] for d in documents if "LogsDropped" in d) == [9, 57, 212]


def test_a_realistic_sequence_gives_the_expected_metrics() -> None:
    stream = Lines()
    emf = exporter(stream, ("FunctionName", "ColdStart"))
    for batch in invocation_sequence():
        emf.export(batch, 0.0)
    documents = stream.documents
    reports = {d["requestId"]: d for d in documents if "Duration" in d}
    cold, timed_out, oom = reports["req-1"], reports["req-2"], reports["req-3"]
    assert (cold["ColdStarts"], cold["Errors"], cold["Timeouts"], cold["OutOfMemory"]) == (1, 0, 0, 0)
    assert cold["ColdStart"] == "true" and cold["InitDuration"] == 210.5 and cold["BilledDuration"] == 16
    assert cold["MemoryUtilization"] == pytest.approx(100 * 71 / 128, abs=0.01)
    assert (timed_out["Timeouts"], timed_out["Errors"], timed_out["ColdStart"]) == (1, 1, "false")
    assert timed_out["status"] == "timeout"  # taken from the runtimeDone
    assert "InitDuration" not in timed_out
    assert (oom["OutOfMemory"], oom["Errors"], oom["errorType"]) == (1, 1, "Runtime.OutOfMemory")

    overhead = [d for d in documents if "WrapperOverhead" in d]
    assert [d["requestId"] for d in overhead] == ["req-1", "req-2"]
    assert (
        overhead[0]["ProcessRss"] == 61.5
        and overhead[0]["GcPause"] == 0.8
        and overhead[0]["ListenerLag"] == 1.5
    )
    assert "ProcessRss" not in overhead[1]
    init = next(d for d in documents if "HandlerImport" in d)
    assert init["WrapperInit"] == 6.2 and init["ColdStart"] == "true"
    dropped = next(d for d in documents if "LogsDropped" in d)
    assert (dropped["LogsDropped"], dropped["LogsDroppedBytes"]) == (12, 4096)
    # No answer to "cold start?" for dropped logs: that document leaves the dimension out.
    assert dropped["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName"]]
    warning = next(d for d in documents if "TimeoutWarnings" in d)
    assert warning["TimeoutWarnings"] == 1 and warning["requestId"] == "req-2"
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LambdaWrapper" for d in documents)
    assert all(d["FunctionName"] == "orders" for d in documents)


def test_metric_values_are_written_as_plain_json_numbers() -> None:
    """Records made in process can hold int and float subclasses: their plain value is the
    metric; booleans, NaN and infinities are not metrics."""
    import enum

    class Size(enum.IntEnum):
        USED = 64

    class Milliseconds(float):
        def __repr__(self) -> str:
            return f"Milliseconds({float(self)})"

    stream = Lines()
    metrics = {"durationMs": Milliseconds(2.0), "memorySizeMB": 128, "maxMemoryUsedMB": Size.USED,
               "billedDurationMs": True, "initDurationMs": float("nan"), "restoreDurationMs": float("inf")}
    record = {"requestId": "r", "metrics": metrics}
    report = TelemetryEvent("2024-05-01T10:00:00.000Z", "platform.report", record,
                            epoch_ms=1714557600000.0, request_id="r", metrics=metrics)
    exporter(stream).export([report], 0.0)
    [document] = stream.documents
    assert (document["Duration"], document["MaxMemoryUsed"], document["MemoryUtilization"]) == (2.0, 64, 50.0)
    assert not {"BilledDuration", "InitDuration", "RestoreDuration"} & set(document)
    assert '"Duration":2.0,' in stream.writes[0] and '"MaxMemoryUsed":64,' in stream.writes[0]


def test_timestamp_is_the_event_time_in_ms() -> None:
    stream = Lines()
    report = event(
        "platform.report", {"requestId": "r", "metrics": {"durationMs": 1}}, "2024-05-01T10:00:00.123Z"
    )
    exporter(stream).export([report], 0.0)
    assert stream.documents[0]["_aws"]["Timestamp"] == 1714557600123


def test_dimensions_from_the_environment_and_reserved_names(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Lines()
    emf = exporter(stream, ("FunctionName", "FunctionVersion", "STAGE", "Missing", "Duration"))
    assert "Duration" not in emf.dimensions
    assert "emf_dimension_ignored" in capsys.readouterr().err
    emf.export([event("platform.report", {"requestId": "r", "metrics": {"durationMs": 2.0}})], 0.0)
    document = stream.documents[0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["FunctionName", "FunctionVersion", "STAGE", "Missing"]
    ]
    assert (document["FunctionVersion"], document["STAGE"], document["Missing"]) == (
        "$LATEST",
        "prod",
        "unknown",
    )
    assert document["Duration"] == 2.0


def test_our_lines_come_back_as_our_own_and_are_skipped() -> None:
    stream = Lines()
    exporter(stream).export([event("platform.report", {"requestId": "r", "metrics": {"durationMs": 1}})], 0.0)
    echoed = event("function", stream.writes[0])
    assert is_own_diagnostic(echoed, emf_namespaces={"LambdaWrapper"})


def test_default_output_is_whole_lines_on_fd_1_few_writes_each_within_pipe_buf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, bytes]] = []

    def fake_write(fd: int, data: bytes) -> int:
        calls.append((fd, bytes(data)))
        return len(data)

    monkeypatch.setattr(emf_module.os, "write", fake_write)
    emf = EmfExporter("LambdaWrapper", metadata=FunctionMetadata(ENV), environ=ENV)
    events = [batch_event for batch in invocation_sequence() for batch_event in batch]
    reports = [event("platform.report", {"requestId": f"r{n}", "metrics": {"durationMs": 2.0}})
               for n in range(40)]
    emf.export(events + reports, 0.0)
    assert calls and all(fd == 1 for fd, _ in calls)
    documents = [document for _, data in calls for document in written(data.decode())]
    assert len(documents) == emf.documents_written
    # Every write is a system call: documents share them, as many as PIPE_BUF allows.
    total = sum(len(data) for _, data in calls)
    assert len(calls) <= total // (PIPE_BUF // 2) + 1 < len(documents)
    assert [d["requestId"] for d in documents[-40:]] == [f"r{n}" for n in range(40)]


def test_a_broken_stdout_is_a_permanent_error() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    emf = EmfExporter(stream=Broken(), metadata=FunctionMetadata(ENV), environ=ENV)
    with pytest.raises(ExportError) as caught:
        emf.export([event("platform.report", {"requestId": "r", "metrics": {"durationMs": 1}})], 0.0)
    assert not caught.value.retryable


def test_registry_builds_emf_from_settings() -> None:
    settings = load(
        {"LAMBDA_WRAPPER_EMF_NAMESPACE": "Shop", "LAMBDA_WRAPPER_EMF_DIMENSIONS": "FunctionName,ColdStart"}
    )
    built = _build("emf", settings)
    assert isinstance(built, EmfExporter) and built.local  # stdout costs no network: outside the budget
    assert built.namespace == "Shop" and built.dimensions == ("FunctionName", "ColdStart")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.sampled_from([2**400, -(10**400), 1e308, 2.0**361]),  # past what CloudWatch (or a double) takes
)


@settings(max_examples=150, deadline=None)
@given(
    metrics=st.dictionaries(
        st.sampled_from(
            [
                "durationMs",
                "billedDurationMs",
                "memorySizeMB",
                "maxMemoryUsedMB",
                "initDurationMs",
                "restoreDurationMs",
            ]
        ),
        json_scalars,
    ),
    status=st.one_of(st.none(), st.sampled_from(["success", "error", "timeout", "failure"]), st.integers()),
    process=st.dictionaries(st.sampled_from(["rssMB", "threads", "gcPauseMs"]), json_scalars),
    when=st.sampled_from(
        ["2024-05-01T10:00:00.000Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "?"]
    ),
)
def test_any_values_still_give_valid_emf(metrics: dict, status: object, process: dict, when: str) -> None:
    stream = Lines()
    emf = exporter(stream, ("FunctionName", "ColdStart"))
    emf.export(
        [
            event(
                "lambda_wrapper.invocation",
                {
                    "requestId": "r",
                    "coldStart": status == "error",
                    "wrapperOverheadMs": metrics.get("durationMs"),
                    "process": process,
                },
            ),
            event("platform.report", {"requestId": "r", "status": status, "metrics": metrics}, when),
            event(
                "platform.logsDropped",
                {"droppedRecords": metrics.get("billedDurationMs"), "droppedBytes": "x"},
            ),
        ],
        0.0,
    )
    for document in stream.documents:
        assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
