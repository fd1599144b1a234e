"""One classification of each invocation, counted alike by EMF, OTLP and the file exporter.

Each case is a sequence of records as the platform and the supervisor deliver them; the
real exporters export it, and what each one counts is read back from its own output
(EMF lines, OTLP/JSON bodies parsed with opentelemetry-proto, NDJSON lines).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from lambda_wrapper.export import FunctionMetadata
from lambda_wrapper.export.emf import EmfExporter
from lambda_wrapper.export.file import FileExporter
from lambda_wrapper.export.otlp import OtlpExporter, SignalTarget
from lambda_wrapper.export.transport import Endpoint, HttpResponse, Transport
from lambda_wrapper.log_lines import decode_events
from lambda_wrapper.telemetry import InvocationClassifier

ENV = {"AWS_LAMBDA_FUNCTION_NAME": "orders", "AWS_LAMBDA_FUNCTION_VERSION": "1"}
RID = "8f5f2ce4-9a1e-4b58-a1a4-7f1e1b7a4d11"
T = "2024-05-01T10:00:0{}.000Z"


def entry(kind: str, record: object, second: int = 0) -> dict[str, object]:
    return {"time": T.format(second), "type": kind, "record": record}


def report(status: str | None = None, error_type: str | None = None, **metrics: float) -> dict[str, object]:
    record: dict[str, object] = {
        "requestId": RID,
        "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 128, "maxMemoryUsedMB": 40,
                    **metrics},
    }
    if status is not None:
        record["status"] = status
    if error_type is not None:
        record["errorType"] = error_type
    return entry("platform.report", record, 2)


def runtime_done(status: str, error_type: str | None = None) -> dict[str, object]:
    record: dict[str, object] = {"requestId": RID, "status": status}
    if error_type is not None:
        record["errorType"] = error_type
    return entry("platform.runtimeDone", record, 1)


def own_invocation(cold_start: bool) -> dict[str, object]:
    return entry("lambda_wrapper.invocation", {"requestId": RID, "coldStart": cold_start}, 1)


# (name, records, expected Errors, Timeouts, OutOfMemory, ColdStarts)
CASES = [
    ("success", [runtime_done("success"), report("success")], 0, 0, 0, 0),
    # The 2022-07-01 report has no status: the runtimeDone's failure still counts.
    ("failure known from runtimeDone only", [runtime_done("failure", "Handled"), report()], 1, 0, 0, 0),
    ("timeout known from runtimeDone only", [runtime_done("timeout"), report()], 1, 1, 0, 0),
    ("error status without a type", [report("error")], 1, 0, 0, 0),
    ("out of memory by type", [runtime_done("error", "Runtime.OutOfMemory"), report("error")], 1, 0, 1, 0),
    ("out of memory by usage", [report("success", maxMemoryUsedMB=128)], 1, 0, 1, 0),
    ("cold start from initDuration", [report("success", initDurationMs=80.0)], 0, 0, 0, 1),
    # Our record knows a proactive init: no cold start although the report has an Init.
    ("proactive init", [own_invocation(False), report("success", initDurationMs=80.0)], 0, 0, 0, 0),
    ("cold start from our record", [own_invocation(True), report("success")], 0, 0, 0, 1),
]


class CapturingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, bytes]] = []

    def post(self, endpoint: Endpoint, body: bytes, content_type: str, deadline: float,
             **kwargs: Any) -> HttpResponse:
        self.bodies.append((endpoint.target, body))
        return HttpResponse(200, {}, b"{}")


def emf_counts(entries: list[dict[str, object]]) -> dict[str, float]:
    stream = io.StringIO()
    EmfExporter(stream=stream, metadata=FunctionMetadata(ENV), environ=ENV).export(
        decode_events(list(entries)).events, time.monotonic() + 5
    )
    documents = [json.loads(line) for line in stream.getvalue().splitlines()]
    (document,) = [doc for doc in documents if "Duration" in doc]
    return {name: document[name] for name in ("Errors", "Timeouts", "OutOfMemory", "ColdStarts")}


def otlp_counts(entries: list[dict[str, object]]) -> dict[str, float]:
    transport = CapturingTransport()
    exporter = OtlpExporter({"metrics": SignalTarget("http://collector/v1/metrics")}, FunctionMetadata(ENV),
                            transport=transport)
    exporter.export(decode_events(list(entries)).events, time.monotonic() + 5)
    sums: dict[str, float] = {}
    for _, body in transport.bodies:
        request = json_format.Parse(body, ExportMetricsServiceRequest())
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.HasField("sum"):
                        sums[metric.name] = sum(p.as_int or p.as_double for p in metric.sum.data_points)
    names = {"Errors": "faas.errors", "Timeouts": "faas.timeouts", "OutOfMemory": "aws.lambda.out_of_memory",
             "ColdStarts": "faas.coldstarts"}
    return {ours: sums.get(theirs, 0) for ours, theirs in names.items()}


def file_counts(entries: list[dict[str, object]], path: Path) -> dict[str, float]:
    FileExporter(str(path)).export(decode_events(list(entries)).events, time.monotonic() + 5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    (invocation,) = [line["invocation"] for line in lines if line["type"] == "platform.report"]
    return {"Errors": int(invocation["failed"]), "Timeouts": int(invocation["timedOut"]),
            "OutOfMemory": int(invocation["outOfMemory"]), "ColdStarts": int(invocation["coldStart"])}


@pytest.mark.parametrize(("entries", "errors", "timeouts", "oom", "cold"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_every_exporter_counts_the_invocation_the_same(
    entries: list[dict[str, object]], errors: int, timeouts: int, oom: int, cold: int, tmp_path: Path
) -> None:
    expected = {"Errors": errors, "Timeouts": timeouts, "OutOfMemory": oom, "ColdStarts": cold}
    assert emf_counts(entries) == expected
    assert otlp_counts(entries) == expected
    assert file_counts(entries, tmp_path / "telemetry.ndjson") == expected


def test_status_and_error_type_fall_back_to_the_runtime_done() -> None:
    classifier = InvocationClassifier()
    events = decode_events([runtime_done("failure", "Handled"), report()]).events
    for event in events:
        classifier.observe(event)
    invocation = classifier.classify(events[-1])
    assert (invocation.status, invocation.error_type, invocation.failed) == ("failure", "Handled", True)


def test_classifying_twice_gives_the_same_answer() -> None:
    """A retried export or a recovered spool batch sees the same report again."""
    classifier = InvocationClassifier()
    events = decode_events([runtime_done("timeout"), report()]).events
    first = [classifier.output(event) for event in events]
    again = [classifier.output(event) for event in events]
    assert first == again
    assert first[-1]["invocation"] == {
        "status": "timeout", "errorType": None, "coldStart": False, "failed": True, "timedOut": True,
        "outOfMemory": False, "source": "platform",
    }


def test_memory_is_bounded() -> None:
    classifier = InvocationClassifier()
    for index in range(500):
        record = {"requestId": f"request-{index}", "status": "failure"}
        classifier.observe(decode_events([entry("platform.runtimeDone", record)]).events[0])
    assert len(classifier._runtime_done) == 64
