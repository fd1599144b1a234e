"""The exact bytes the emf exporter writes, and the classification every exporter reports,
for the fixture corpus and for edge cases, held against a recorded copy.

Faster code on the per-invocation path must not change one byte of what goes out: the
other EMF tests check that documents are valid and carry the right values, this one that
a document is written exactly as before (member order, number text, quoting, which
metrics and properties appear, how writes are cut), through the real decoder and
exporter. A change meant to alter the output regenerates the copy and shows in review:

    .venv/bin/python tests/test_export_emf_golden.py > tests/fixtures/emf-golden.txt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fixtures import batch_bodies, telemetry_files
from lambda_wrapper.export import FunctionMetadata
from lambda_wrapper.export import emf as emf_module
from lambda_wrapper.export.emf import EmfExporter
from lambda_wrapper.log_lines import decode_batch
from lambda_wrapper.telemetry import InvocationClassifier, TelemetryEvent, decode_platform_events, parse_batch
from test_export_emf import Lines

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "emf-golden.txt"
FIXED_NOW_S = 1_700_000_000.123  # what ``time.time`` says for a document without a usable time
ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "orders",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "STAGE": 'p%d"r\u00e9od',
    "TAB": "a\tb",
}
# Dimension sets and namespaces: a ``%`` or a quote in either must come out as it went in.
CONFIGS = (
    ("LambdaWrapper", ("FunctionName",)),
    ("LambdaWrapper", ("FunctionName", "ColdStart")),
    ("LambdaWrapper", ("ColdStart",)),
    ("LambdaWrapper", ()),
    ('Name%s"space', ("FunctionName", "FunctionVersion", "STAGE", "TAB", "MISSING", "ColdStart", "Errors")),
)


class FloatKind(float):
    def __repr__(self) -> str:
        return "FloatKind()"


class IntKind(int):
    def __repr__(self) -> str:
        return "IntKind()"


REPORT, DONE = "platform.report", "platform.runtimeDone"


def entry(type_: str, record: object, time: object = "2024-05-01T10:00:00.000Z") -> dict[str, object]:
    return {"time": time, "type": type_, "record": record}


def edge_batches() -> list[list[dict[str, object]]]:
    """Entries that reach every branch of the documents: each report shape, odd values,
    odd times, quoting, each own record type."""
    process = {"rssMB": 61.5, "peakRssMB": 70.25, "cpuUserMs": 12, "cpuSystemMs": 3, "openFds": 9,
               "threads": 4, "tmpUsedMB": 0.5, "gcCollections": 2, "gcPauseMs": 0.8}
    report_metrics = {"durationMs": 12.25, "billedDurationMs": 13, "memorySizeMB": 128, "maxMemoryUsedMB": 60}
    batches: list[list[dict[str, object]]] = [[
        entry("platform.start", {"requestId": "r1", "version": "$LATEST"}),
        entry(DONE, {"requestId": "r1", "status": "success", "metrics": {"durationMs": 11.0}}),
        entry("lambda_wrapper.invocation", {"requestId": "r1", "coldStart": True, "proactiveInit": False,
                                            "handlerDurationMs": 11.5, "wrapperOverheadMs": 0.041,
                                            "errorType": None, "process": process, "listenerLagMs": 3.25}),
        entry(REPORT, {"requestId": "r1", "status": "success",
                                  "metrics": {**report_metrics, "initDurationMs": 250.5}}),
        entry("lambda_wrapper.init", {"wrapperInitMs": 6.2, "extensionInitMs": 3.1, "handlerImportMs": 41.0,
                                      "coldStart": True, "proactiveInit": False}),
        entry("lambda_wrapper.init", {"wrapperInitMs": None, "extensionInitMs": 3.1, "handlerImportMs": 4,
                                      "coldStart": "yes"}),
    ], [
        entry(DONE, {"requestId": "r2", "status": "timeout", "errorType": "Sandbox.Timedout"}),
        entry("lambda_wrapper.invocation", {"requestId": "r2", "coldStart": False, "handlerDurationMs": 900,
                                            "wrapperOverheadMs": 0.05, "errorType": "TimeoutError"}),
        entry(REPORT, {"requestId": "r2", "metrics": report_metrics}),
        entry(DONE, {"requestId": "r3", "status": "error", "errorType": "Runtime.OutOfMemory"}),
        entry(REPORT, {"requestId": "r3", "status": "error", "errorType": "Runtime.OutOfMemory",
                                  "metrics": {**report_metrics, "maxMemoryUsedMB": 128}}),
        entry(REPORT, {"requestId": "r4", "status": "failure", "errorType": "Runtime.ExitError",
                                  "metrics": {"durationMs": 1, "memorySizeMB": 0, "maxMemoryUsedMB": 3,
                                              "restoreDurationMs": 80.125}}),
        entry(REPORT, {"requestId": "r5b", "status": "success", "source": "elsewhere",
                       "metrics": {"durationMs": 2.5}}),
        entry(REPORT, {"requestId": "r5", "status": "success", "source": "self",
                                  "metrics": {"durationMs": 2.5, "memorySizeMB": 3, "maxMemoryUsedMB": 1}}),
        entry(REPORT, {"requestId": 'q"u\\o\u00e9\u2028t\n', "status": "s\u00fc\"cc",
                                  "metrics": {"durationMs": 1e-7, "billedDurationMs": 1e22,
                                              "memorySizeMB": 1769, "maxMemoryUsedMB": 1769.0}}),
    ], [
        # Odd values: booleans, strings, NaN, infinities, past CloudWatch's limit, huge integers.
        entry(REPORT, {"requestId": "r6", "metrics": {
            "durationMs": True, "billedDurationMs": "13", "maxMemoryUsedMB": float("nan"),
            "initDurationMs": float("inf"), "restoreDurationMs": 2.0**361, "memorySizeMB": 10**400}}),
        entry(REPORT, {"requestId": "r7", "metrics": {
            "durationMs": -0.0, "billedDurationMs": 2**360, "maxMemoryUsedMB": 10**30,
            "memorySizeMB": 2**53 + 1}}),
        entry(REPORT, {"requestId": "r8", "metrics": {}}),
        entry(REPORT, {"requestId": "r9", "metrics": "none"}),
        entry(REPORT, {"metrics": {"durationMs": 4.5}}),
        entry(REPORT, "a string record"),
        entry(REPORT, {"requestId": 12, "status": 5, "errorType": ["x"],
                       "metrics": {"durationMs": 4}}),
        entry("lambda_wrapper.invocation", {"requestId": "r10", "handlerDurationMs": 1.5, "process": "none",
                                            "errorType": 7}),
        entry("lambda_wrapper.invocation", {"requestId": "r11", "process": {"threads": 2}}),
        entry("lambda_wrapper.invocation", {"requestId": "r12"}),
        entry("lambda_wrapper.invocation", ["not", "an", "object"]),
    ], [
        # Times: the platform's form, others the decoder reads, none, out of CloudWatch's range.
        *(entry(REPORT, {"requestId": f"t{number}", "metrics": {"durationMs": 1}}, time)
          for number, time in enumerate(("2024-05-01T10:00:00.5Z", "2024-05-01 10:00:00+02:00", "not a time",
                                         "1969-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z",
                                         "2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00.123789Z"),
                                        start=1)),
        entry("platform.logsDropped", {"droppedRecords": 5, "droppedBytes": 1234, "reason": "x"}),
        entry("platform.logsDropped", {"droppedRecords": 0}),
        entry("platform.logsDropped", {"reason": "nothing counted"}),
        entry("lambda_wrapper.warning", {"kind": "timeout_warning", "requestId": "w1"}),
        entry("lambda_wrapper.warning", {"kind": "memory_warning"}),
        entry("lambda_wrapper.warning", {"kind": "other"}),
        entry("lambda_wrapper.warning", {"kind": 3}),
        entry("lambda_wrapper.loss", {"droppedRecords": 3, "droppedBytes": 900, "reason": "shutdown",
                                      "exporter": "emf", "droppedByType": {"function": 1, "other": 2}}),
        entry("lambda_wrapper.loss", {"droppedRecords": 1, "reason": {"why": [1, None, True]},
                                      "exporter": 5}),
        entry("lambda_wrapper.loss", {"droppedBytes": 2, "reason": None}),
        entry("platform.initStart", {"initializationType": "on-demand", "phase": "init"}),
        entry("function", "a log line\n"),
    ]]
    # Enough small documents for several writes of whole lines.
    batches.append([entry(REPORT, {"requestId": f"many-{number}", "status": "success",
                                              "metrics": {**report_metrics, "durationMs": number / 7}})
                    for number in range(40)])
    return batches


def corpus() -> list[list[TelemetryEvent]]:
    """Event batches as the pipeline hands them to an exporter."""
    batches = [decode_batch(body).events for path in telemetry_files() for body in batch_bodies(path)]
    for items in edge_batches():
        batches.append(decode_platform_events(parse_batch(json.dumps(items))).events)
    batches[-1][0].metrics = {"durationMs": FloatKind(2.5), "billedDurationMs": IntKind(3), "memorySizeMB": 8,
                              "maxMemoryUsedMB": IntKind(4)}
    return batches


def golden_text() -> str:
    """What the exporter writes for the corpus under each configuration (each write on
    lines of its own, so that where writes are cut shows too), then each report's
    classification."""
    out = []
    for namespace, dimensions in CONFIGS:
        stream = Lines()
        metadata = FunctionMetadata(ENV)
        exporter = EmfExporter(namespace, dimensions, stream=stream, metadata=metadata, environ=ENV)
        for events in corpus():
            exporter.export(events, float("inf"))
        out.append(f"== {namespace} {dimensions!r} {len(stream.writes)} writes")
        for text in stream.writes:
            out.append(f"-- write of {len(text)} characters")
            out.append(text.rstrip("\n"))
    out.append("== classification")
    classifier = InvocationClassifier()
    for events in corpus():
        for event in events:
            out.append(json.dumps(classifier.output(event), sort_keys=True, default=repr))
    return "\n".join(out) + "\n"


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    class Clock:
        @staticmethod
        def time() -> float:
            return FIXED_NOW_S

    monkeypatch.setattr(emf_module, "time", Clock)


@pytest.mark.usefixtures("fixed_clock")
def test_documents_and_classification_are_byte_identical_to_the_recorded_copy() -> None:
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    actual = golden_text().splitlines()
    for number, (want, got) in enumerate(zip(expected, actual, strict=False), start=1):
        assert got == want, f"line {number} of {GOLDEN.name} differs"
    assert len(actual) == len(expected)


if __name__ == "__main__":
    emf_module.time = type("Clock", (), {"time": staticmethod(lambda: FIXED_NOW_S)})  # type: ignore[assignment]
    sys.stdout.write(golden_text())
