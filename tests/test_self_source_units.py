"""The self source's records through the real encoders, doctor, and the handler path's cost."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from lambda_wrapper import doctor, supervisor
from lambda_wrapper.export import InFlightMarker
from lambda_wrapper.export.emf import EmfExporter
from lambda_wrapper.export.otlp_metrics import MetricEncoder
from lambda_wrapper.export.otlp_traces import SpanEncoder, TraceContexts
from lambda_wrapper.instruments import (
    HOLD,
    INVOCATION,
    SELF,
    ColdStartTracker,
    InitTimeline,
    SelfReporter,
    SourceArbiter,
    own_event,
)
from lambda_wrapper.log_lines import decode_batch
from lambda_wrapper.telemetry import TelemetryEvent


def self_records(error: BaseException | None = None) -> list[Any]:
    timeline = InitTimeline(time.perf_counter())
    timeline.init_ends()
    tracker = ColdStartTracker(timeline)
    tracker.invocation_starts(time.time())
    reporter = SelfReporter(timeline, tracker, None)
    reporter.started()
    maker = reporter.record_maker()
    events = maker.records(maker.measured("req-1", 12.5, error))
    # Through JSON and the decoder, as the pipeline gives them to exporters.
    body = json.dumps([event.to_output() for event in events]).encode()
    return list(decode_batch(body).events)


def test_the_records_have_the_platform_shapes() -> None:
    events = self_records(SystemExit(3))
    assert [e.type for e in events] == ["platform.start", "platform.runtimeDone", "platform.report"]
    report = events[-1]
    assert report.request_id == "req-1" and report.record["source"] == SELF
    assert report.metrics is not None and report.metrics["durationMs"] == 12.5
    assert "initDurationMs" in report.metrics
    assert (report.record["status"], report.record["errorType"]) == ("error", "Runtime.ExitError")


def test_emf_marks_the_source_as_a_property_not_a_dimension() -> None:
    stream = io.StringIO()
    EmfExporter(stream=stream, environ={"AWS_LAMBDA_FUNCTION_NAME": "f"}).export(self_records(), 0.0)
    document = json.loads(stream.getvalue().splitlines()[0])
    assert document["source"] == "self" and document["Duration"] == 12.5 and document["ColdStarts"] == 1
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] == ["FunctionName"]


def attribute(attributes: Any, key: str) -> object:
    return next(a["value"] for a in attributes if a["key"] == key)


def test_otlp_marks_the_source_on_the_report_gauges_and_the_invocation_span() -> None:
    events = self_records(ValueError())
    metrics: list[Any] = MetricEncoder().encode(events).items
    duration = next(m for m in metrics if m["name"] == "aws.lambda.duration")
    point = duration["gauge"]["dataPoints"][0]
    assert attribute(point["attributes"], "aws.lambda.telemetry.source") == {"stringValue": "self"}
    spans: list[Any] = SpanEncoder(TraceContexts(), "f").encode(events).items
    invocation_id = {"stringValue": "req-1"}
    span = next(s for s in spans if attribute(s["attributes"], "faas.invocation_id") == invocation_id)
    assert attribute(span["attributes"], "aws.lambda.telemetry.source") == {"stringValue": "self"}
    assert attribute(span["attributes"], "error.type") == {"stringValue": "ValueError"}


def detected_source(environ: dict[str, str]) -> Any:
    report: Any = doctor.build_report(environ)
    return report["detected"]["telemetrySource"]


def test_doctor_says_which_source(monkeypatch: pytest.MonkeyPatch) -> None:
    outside = detected_source({"LAMBDA_WRAPPER_TELEMETRY_SOURCE": "self"})
    assert outside["setting"] == "self" and outside["inUse"] == "not running in a function"
    monkeypatch.setattr(supervisor, "TELEMETRY_SOURCE", "self")
    inside = detected_source({})
    assert (inside["setting"], inside["inUse"]) == ("auto", "self")
    assert "telemetrySource:" in doctor.render_text(doctor.build_report({}))


def test_the_in_flight_marker_names_what_a_dead_process_was_running(tmp_path: Path) -> None:
    """A marker left by an earlier life of this pid counts as a dead process's."""
    ended, running = InFlightMarker(str(tmp_path)), InFlightMarker(str(tmp_path))
    ended.begin("ended", 1.0)
    ended.end()
    running.begin("an-earlier-and-longer-request-id", 1.5)  # its tail stays behind the next one's
    running.end()
    running.begin("running", 2.0)
    found = InFlightMarker(str(tmp_path)).recover_orphans()
    assert [(request_id, started) for request_id, started, _ in found] == [("running", 2.0)]
    assert InFlightMarker(str(tmp_path)).recover_orphans() == []  # each is reported once


def reporter_after_init(arbiter: SourceArbiter | None = None) -> SelfReporter:
    timeline = InitTimeline(time.perf_counter())
    timeline.init_ends()
    return SelfReporter(timeline, ColdStartTracker(timeline), arbiter)


def invocation_record(request_id: str, cold_start: bool, error_type: str | None) -> TelemetryEvent:
    record = {"requestId": request_id, "coldStart": cold_start, "handlerDurationMs": 250.0,
              "wrapperOverheadMs": 0.05, "errorType": error_type}
    return own_event(INVOCATION, record, request_id, epoch_s=1_800_000_000.5)


def test_the_records_are_made_on_the_flush_from_the_invocation_record() -> None:
    """The handler's thread only submits its invocation record: the self records come
    from it, as the flush amends it; its time is the invocation's end."""
    reporter = reporter_after_init()
    events = [invocation_record("cold", True, "SystemExit")]
    reporter.add_records(events)
    assert [e.type for e in events] == [
        INVOCATION, "platform.start", "platform.runtimeDone", "platform.report"]
    start, _, report = events[1:]
    assert start.epoch_ms == 1_800_000_000_250.0  # the end less the duration
    assert report.epoch_ms == 1_800_000_000_500.0 and report.metrics is not None
    assert report.metrics["durationMs"] == 250.0 and "initDurationMs" in report.metrics
    record: Any = report.record
    assert (record["status"], record["errorType"]) == ("error", "Runtime.ExitError")
    warm = [invocation_record("warm", False, None)]
    reporter.add_records(warm)
    assert warm[-1].metrics is not None and "initDurationMs" not in warm[-1].metrics
    record = warm[-1].record
    assert record["status"] == "success" and "errorType" not in record


def test_with_a_subscription_the_records_are_built_only_when_released() -> None:
    arbiter = SourceArbiter(HOLD)
    reporter = reporter_after_init(arbiter)
    built: list[str] = []
    maker = reporter.record_maker()
    make_records = maker.records

    def counted(measured: Any) -> list[TelemetryEvent]:
        built.append(measured.request_id)
        return make_records(measured)

    maker.records = counted  # type: ignore[method-assign]
    for request_id in ("seen", "missing"):
        events = [invocation_record(request_id, False, None)]
        reporter.add_records(events)
        assert len(events) == 1  # held, not added
    arbiter.filter([TelemetryEvent("2026-12-04T00:00:00.000Z", "platform.report", {"requestId": "seen"},
                                   request_id="seen")])
    arbiter.release_all()
    released = arbiter.release_due()
    assert built == ["missing"]
    assert [(e.type, e.request_id) for e in released][-1] == ("platform.report", "missing")


def test_with_a_subscription_no_record_maker_loads_while_the_platform_reports_come() -> None:
    arbiter = SourceArbiter(HOLD)
    reporter = reporter_after_init(arbiter)
    events = [invocation_record("seen", False, None)]
    reporter.add_records(events)
    arbiter.filter([TelemetryEvent("2026-12-04T00:00:00.000Z", "platform.report", {"requestId": "seen"},
                                   request_id="seen")])
    arbiter.release_all()
    assert arbiter.release_due() == []
    assert reporter._maker is None  # self_records is not even imported on this path
