"""The toolkit's own records stay objects until exported; they are spooled off the handler's path."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lambda_wrapper.export import Pipeline
from lambda_wrapper.export.file import FileExporter
from lambda_wrapper.instruments import IMPORT_PROFILE, INIT, INVOCATION, InvocationRecord, iso_time, own_event
from lambda_wrapper.settings import Settings
from lambda_wrapper.supervisor import Supervisor, wrap_handler
from lambda_wrapper.telemetry import TelemetryEvent

Handler = Callable[[Any, Any], Any]


class PassThrough:
    """The extension's in-process face: records to a real pipeline, signals ignored."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def submit(self, event: Any, amend: Any = None) -> None:
        self.pipeline.submit(event, amend)

    def handler_started(self, request_id: str) -> None:
        pass

    def handler_finished(self, request_id: str) -> None:
        pass


def context(request_id: str) -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=request_id, _deadline_ms=int(time.time() * 1000) + 3000)


def supervised_into_file(output: Path, spool: Path) -> tuple[Pipeline, Handler]:
    """A wrapped do-nothing handler whose own records go through a real pipeline to ``output``."""
    pipeline = Pipeline([FileExporter(str(output))], str(spool), 1 << 20)
    supervisor = Supervisor(Settings({}))
    supervisor.timeline.init_ends()
    supervisor.extension = PassThrough(pipeline)  # type: ignore[assignment]
    return pipeline, wrap_handler(lambda event, ctx: None, supervisor)


def test_submit_neither_serialises_nor_writes_and_the_exporter_gets_the_object(tmp_path: Path) -> None:
    output = tmp_path / "out.ndjson"
    seen: list[Any] = []

    class Watched(FileExporter):
        def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
            seen.extend(events)
            super().export(events, deadline)

    exporter = Watched(str(output))
    pipeline = Pipeline([exporter], str(tmp_path / "spool"), 1 << 20)
    event = own_event(INVOCATION, {"requestId": "r1", "unencodable": object()}, "r1")
    pipeline.submit(event)
    spool = pipeline.channels[0].spool
    assert spool.size_bytes == 0  # nothing written on the submitting thread
    pipeline.spool_own()
    assert spool.size_bytes > 0  # durable from here on
    pipeline.flush(1.0)
    assert seen == [event] and seen[0] is event  # the object itself, never decoded again
    (line,) = output.read_text().splitlines()
    assert json.loads(line)["record"]["requestId"] == "r1"


def test_the_listeners_batch_spools_the_records_submitted_before_it(tmp_path: Path) -> None:
    pipeline = Pipeline([FileExporter(str(tmp_path / "out.ndjson"))], str(tmp_path / "spool"), 1 << 20)
    pipeline.submit(own_event(INVOCATION, {"requestId": "r1"}, "r1"))
    spool = pipeline.channels[0].spool
    assert spool.size_bytes == 0
    pipeline.receive(b'[{"time": "2024-05-01T10:00:00.000Z", "type": "platform.runtimeDone", '
                     b'"record": {"requestId": "r1", "status": "success"}}]')
    assert len(pipeline.channels[0].held) == 2  # the own records' batch, then the platform's
    assert spool.size_bytes > 0 and spool.cursor == 0


def test_init_and_import_profile_records_keep_their_request_id_in_the_file_exporter(tmp_path: Path) -> None:
    output = tmp_path / "out.ndjson"
    pipeline = Pipeline([FileExporter(str(output))], str(tmp_path / "spool"), 1 << 20)
    supervisor = Supervisor(Settings({"LAMBDA_WRAPPER_IMPORT_PROFILE": "5"}))
    supervisor.start_import_profile()
    assert supervisor.import_profile is not None
    supervisor.timeline.init_ends()
    supervisor.extension = PassThrough(pipeline)  # type: ignore[assignment]
    handler = wrap_handler(lambda event, ctx: None, supervisor)
    handler({}, context("first-request"))
    pipeline.flush(1.0)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    by_type = {line["type"]: line for line in lines}
    assert set(by_type) == {INIT, IMPORT_PROFILE, INVOCATION}
    for line in by_type.values():
        assert line["requestId"] == "first-request", line["type"]


def test_the_invocation_record_is_made_off_the_handlers_path(tmp_path: Path) -> None:
    """The supervisor queues what it measured (``InvocationRecord``); the pipeline makes
    the record, its time text from its epoch_ms, when it spools it: the spool (what a
    later Init recovers) and the exporters get the same record."""
    output = tmp_path / "out.ndjson"
    pipeline, handler = supervised_into_file(output, tmp_path / "spool")
    handler({}, context("r1"))
    handler({}, context("r2"))
    queued = [event for event, _ in pipeline._own if event.type == INVOCATION]
    # Nothing made on the handler's thread:
    assert len(queued) == 2 and all(isinstance(event, InvocationRecord) for event in queued)
    pipeline.spool_own()
    body = pipeline._incoming[-1][0]  # the batch just written to every spool
    spooled = [record for record in json.loads(body) if record["type"] == INVOCATION]
    pipeline.flush(1.0)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    exported = [line for line in lines if line["type"] == INVOCATION]
    assert [line["record"]["requestId"] for line in exported] == ["r1", "r2"]
    for measured, copy, line in zip(queued, spooled, exported, strict=True):
        assert isinstance(measured, InvocationRecord)
        assert copy["time"] == iso_time(measured.ended_epoch_s) == line["time"]
        assert copy["record"] == line["record"]
        assert set(line["record"]) == {"requestId", "coldStart", "proactiveInit", "handlerDurationMs",
                                       "wrapperOverheadMs", "errorType"}


def test_the_invocation_record_carries_the_listener_lag_once_it_is_measured(tmp_path: Path) -> None:
    output = tmp_path / "out.ndjson"
    pipeline, handler = supervised_into_file(output, tmp_path / "spool")
    handler({}, context("before"))
    pipeline.flush(1.0)  # nothing from the platform yet: no lag to tell
    sent = iso_time(time.time() - 0.25)
    pipeline.receive(b'[{"time": "%s", "type": "platform.runtimeDone", '
                     b'"record": {"requestId": "before", "status": "success"}}]' % sent.encode())
    pipeline.flush(1.0)  # the batch decoded: its lag measured
    lag = pipeline.listener_lag_ms
    assert lag is not None and lag >= 250.0
    handler({}, context("after"))
    pipeline.flush(1.0)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    records = {line["record"]["requestId"]: line["record"] for line in lines if line["type"] == INVOCATION}
    assert "listenerLagMs" not in records["before"]
    assert records["after"]["listenerLagMs"] == round(lag, 3)
