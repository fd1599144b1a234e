"""Every record the listener acknowledged is exported or counted, and the bytes held
for the exporters are capped in production (the export pipeline with the real listener,
file and EMF exporters)."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from lambda_wrapper.export import MAX_LOCAL_EVENTS_PER_CALL, Pipeline, count_function_records, count_records
from lambda_wrapper.export.emf import EmfExporter
from lambda_wrapper.export.file import FileExporter
from lambda_wrapper.extension import TelemetryListener
from lambda_wrapper.instruments import INVOCATION, own_event
from lambda_wrapper.telemetry import TelemetryEvent


def body(first: int, count: int) -> bytes:
    return json.dumps([
        {"time": "2026-05-01T10:00:00.000Z", "type": "function", "record": f"line {n}\n"}
        for n in range(first, first + count)
    ]).encode()


def file_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_function_records_are_counted_in_compact_spaced_and_mixed_bodies() -> None:
    compact = [{"time": "2026-05-01T10:00:00.000Z", "type": "function", "record": f"line {n}\n"}
               for n in range(3)]
    platform = {"time": "2026-05-01T10:00:00.000Z", "type": "platform.start", "record": {"requestId": "a"}}
    spaced_line = json.dumps(compact[0])  # ": " after each key
    cases = {
        json.dumps(compact, separators=(",", ":")): 3,
        json.dumps(compact): 3,
        json.dumps([*compact, platform], separators=(",", ":")): 3,
        # One serialiser's compact lines and another's spaced one in a body: both counted.
        "[" + ",".join([*(json.dumps(e, separators=(",", ":")) for e in compact[1:]), spaced_line]) + "]": 3,
    }
    for text, functions in cases.items():
        raw = text.encode()
        assert count_function_records(raw, count_records(raw)) == functions, text
        assert count_function_records(raw) == functions, text


def test_records_whose_json_has_its_own_time_key_are_counted_once() -> None:
    """A JSON-format log line (``AWS_LAMBDA_LOG_FORMAT=JSON``) arrives as an object record,
    which may hold ``time`` keys of its own: only the events are counted, so that a loss
    report says how many records were lost, not how many ``time`` keys they held."""
    stamp = "2026-05-01T10:00:00.000Z"
    records = [
        {"time": stamp, "msg": "the key first"},
        {"level": "INFO", "time": stamp},
        {"message": "nested", "context": {"time": stamp, "attempt": {"time": stamp}}},
        {"message": "a list of objects", "spans": [{"name": "a", "time": stamp}]},
        {"timestamp": stamp, "level": "INFO", "message": "the platform's own shape"},
    ]
    events = [{"time": stamp, "type": "function", "record": record} for record in records]
    events.append({"time": stamp, "type": "function", "record": 'a text line with "time" in it\n'})
    events.append({"time": stamp, "type": "platform.start", "record": {"requestId": "a"}})
    for text in (json.dumps(events, separators=(",", ":")), json.dumps(events)):
        raw = text.encode()
        assert count_records(raw) == len(events), text
        assert count_function_records(raw, count_records(raw)) == len(events) - 1, text
    assert count_records(json.dumps(events[:1], separators=(",", ":")).encode()) == 1
    # Events whose keys come in another order, or another layout, are still counted.
    reordered = [{"type": "function", "record": f"line {n}\n", "time": stamp} for n in range(3)]
    assert count_records(json.dumps(reordered).encode()) == 3
    assert count_records(json.dumps(events[-2:], indent=1).encode()) == 2


def test_undelivered_records_are_counted_in_every_local_output_and_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "telemetry.ndjson"
    emf_stream = io.StringIO()
    pipeline = Pipeline([FileExporter(str(output)), EmfExporter(stream=emf_stream)], str(tmp_path / "spool"),
                        8 * 1024 * 1024)
    pipeline.accept(body(0, 100))
    pipeline.flush(5.0)
    late = [body(100, 40), body(140, 60)]
    for late_body in late:
        pipeline.accept(late_body)
    # SIGTERM came and the window is over: no more exporting, count what is left.
    pipeline.finish_by(time.monotonic())
    assert pipeline.flush(5.0) == 0
    losses = pipeline.give_up("shutdown", time.monotonic() + 1.0)

    expected = {"droppedRecords": 100, "droppedBytes": sum(len(b) for b in late), "reason": "shutdown"}
    records = file_records(output)
    lines = [r for r in records if r["type"] == "function"]
    assert [r["record"] for r in lines] == [f"line {n}\n" for n in range(100)]
    loss = [r["record"] for r in records if r["type"] == "lambda_wrapper.loss"]
    assert len(loss) == 1
    assert {key: loss[0][key] for key in expected} == expected
    assert loss[0]["droppedByType"] == {"function": 100, "other": 0}
    assert losses["file"]["droppedRecords"] == losses["emf"]["droppedRecords"] == 100

    documents = [json.loads(line) for line in emf_stream.getvalue().splitlines()]
    lost = [d for d in documents if "RecordsLost" in d]
    assert len(lost) == 1
    assert (lost[0]["RecordsLost"], lost[0]["RecordsLostBytes"], lost[0]["reason"]) == (
        100, expected["droppedBytes"], "shutdown")

    said = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"records_lost"' in line]
    assert len(said) == 1
    assert said[0]["exporters"]["file"]["droppedRecords"] == 100

    # Given up on: a batch arriving later is taken (a refusal's platform.logsDropped
    # could only come back here) and counted as lost in every local output and on stderr.
    pipeline.accept(body(200, 3))
    records = file_records(output)
    assert [r["record"]["droppedByType"] for r in records if r["type"] == "lambda_wrapper.loss"][1:] == [
        {"function": 3, "other": 0}]
    assert [r["type"] for r in records if r["type"] == "function"] == ["function"] * 100
    documents = [json.loads(line) for line in emf_stream.getvalue().splitlines()]
    assert [d["RecordsLost"] for d in documents if "RecordsLost" in d] == [100, 3]
    said = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"records_lost"' in line]
    assert [s["exporters"]["file"]["droppedByType"]["function"] for s in said] == [3]
    assert pipeline.late_records == 3
    # Our own report coming back is not a loss to report (that would report the report).
    said_line = json.dumps(said[0]) + "\n"
    pipeline.accept(json.dumps([{"time": "2026-05-01T10:00:01.000Z", "type": "function",
                                 "record": said_line}]).encode())
    assert pipeline.late_records == 3
    assert not [line for line in capsys.readouterr().err.splitlines() if '"records_lost"' in line]
    # Nothing of it is spooled, so a later Init exports nothing again.
    later = Pipeline([FileExporter(str(tmp_path / "later.ndjson"))], str(tmp_path / "spool"), 8 * 1024 * 1024)
    assert later.recover() == 0


def test_a_flush_cut_by_the_stop_point_has_delivered_the_oldest_batches(tmp_path: Path) -> None:
    """SIGTERM's stop point can arrive while a flush decodes a long backlog (one frozen
    mid-flush, thawed for the shutdown): what it decoded before must be out, only what
    it had not reached is counted as lost."""
    output = tmp_path / "telemetry.ndjson"
    pipeline = Pipeline([FileExporter(str(output))], str(tmp_path / "spool"), 8 * 1024 * 1024)
    per_batch = 10
    before = MAX_LOCAL_EVENTS_PER_CALL // per_batch + 10  # more than one export call's worth
    for n in range(before):
        pipeline.accept(body(n * per_batch, per_batch))

    def stop_now(events: list[TelemetryEvent]) -> None:
        # The flush reaches this record at the moment the shutdown sets the stop point
        # (on another thread in production; here, exactly between two batches).
        pipeline.finish_by(time.monotonic())

    pipeline.submit(own_event(INVOCATION, {"requestId": "r1"}, "r1"), stop_now)
    after = 20
    for n in range(before, before + after):
        pipeline.accept(body(n * per_batch, per_batch))
    delivered = pipeline.flush(5.0)
    losses = pipeline.give_up("shutdown", time.monotonic() + 1.0)

    lines = [r["record"] for r in file_records(output) if r["type"] == "function"]
    assert delivered == len(lines) == MAX_LOCAL_EVENTS_PER_CALL
    assert lines == [f"line {n}\n" for n in range(MAX_LOCAL_EVENTS_PER_CALL)]
    total = (before + after) * per_batch + 1  # the own record too
    assert losses["file"]["droppedRecords"] == total - len(lines)


def test_held_bytes_are_capped_and_the_listener_refuses_past_the_cap(tmp_path: Path) -> None:
    output = tmp_path / "telemetry.ndjson"
    first_two = len(body(0, 50)) + len(body(50, 50))
    pipeline = Pipeline([FileExporter(str(output))], str(tmp_path / "spool"), 8 * 1024 * 1024,
                        max_held_bytes=first_two + 10)
    listener = TelemetryListener(sink=pipeline.accept)
    port = listener.bind("127.0.0.1", 0)
    # Not start(): a thread named like the extension's listener would make doctor's port
    # check, later in this process, report the port as taken by our own extension.
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def post(payload: bytes) -> int:
        connection.request("POST", "/", payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            connection.close()
        return response.status

    assert [post(body(0, 50)), post(body(50, 50)), post(body(100, 50))] == [200, 200, 503]
    assert pipeline.held_bytes() == first_two
    assert pipeline.refused_batches == 1
    pipeline.flush(5.0)
    assert pipeline.held_bytes() == 0
    assert post(body(100, 50)) == 200
    pipeline.flush(5.0)
    lines = [r["record"] for r in file_records(output) if r["type"] == "function"]
    assert lines == [f"line {n}\n" for n in range(150)]


def test_spool_overflow_is_counted_in_the_output(tmp_path: Path) -> None:
    output = tmp_path / "telemetry.ndjson"
    one = body(0, 100)
    # A spool that holds about two batches: the oldest go before any flush.
    pipeline = Pipeline([FileExporter(str(output))], str(tmp_path / "spool"), 3 * len(one))
    for first in range(0, 600, 100):
        pipeline.accept(body(first, 100))
    pipeline.flush(5.0)
    records = file_records(output)
    exported = [r for r in records if r["type"] == "function"]
    loss = [r["record"] for r in records if r["type"] == "lambda_wrapper.loss"]
    assert loss and all(entry["reason"] == "spool_overflow" for entry in loss)
    assert len(exported) + sum(entry["droppedRecords"] for entry in loss) == 600


def test_a_batch_larger_than_one_call_goes_out_in_parts_and_a_shutdown_counts_only_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM during the export of a platform batch of 1,200 records: the flush stops
    after the call running (500 records), and the loss report counts the 700 left."""
    output = tmp_path / "telemetry.ndjson"

    class SigtermDuringFirstCall(FileExporter):
        def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
            super().export(events, deadline)
            pipeline.finish_by(time.monotonic())

    pipeline = Pipeline([SigtermDuringFirstCall(str(output))], str(tmp_path / "spool"), 8 * 1024 * 1024)
    pipeline.accept(body(0, 1200))
    assert pipeline.flush(5.0) == 500
    losses = pipeline.give_up("shutdown", time.monotonic() + 1.0)

    records = file_records(output)
    assert [r["record"] for r in records if r["type"] == "function"] == [f"line {n}\n" for n in range(500)]
    assert losses["file"]["droppedByType"] == {"function": 700, "other": 0}
    assert losses["file"]["droppedRecords"] == 700
    assert [r["record"]["droppedRecords"] for r in records if r["type"] == "lambda_wrapper.loss"] == [700]
    capsys.readouterr()


def test_a_flush_lock_left_by_a_dead_thread_is_taken_over(tmp_path: Path) -> None:
    """Our threads can die anywhere (an exception injected by the function): one that
    dies holding the flush lock must not stop every later flush, since the event loop
    flushes before its /event/next and the invocation would wait for it."""
    output = tmp_path / "telemetry.ndjson"
    pipeline = Pipeline([FileExporter(str(output))], str(tmp_path / "spool"), 8 * 1024 * 1024)
    holder = threading.Thread(target=pipeline._acquire_flush_lock, args=(float("inf"),))
    holder.start()
    holder.join()
    pipeline.accept(body(0, 10))
    assert pipeline.flush(1.0) == 10
    assert [r["record"] for r in file_records(output)] == [f"line {n}\n" for n in range(10)]
    # A live holder is waited for only within the budget.
    assert pipeline._acquire_flush_lock(float("inf"))
    started = time.monotonic()
    waiter: list[int] = []
    thread = threading.Thread(target=lambda: waiter.append(pipeline.flush(0.2)))
    thread.start()
    thread.join(5)
    assert waiter == [0] and time.monotonic() - started < 2
    pipeline._release_flush_lock()


def test_the_largest_step_a_stop_waits_for_is_one_batch_or_one_call_not_the_backlog(tmp_path: Path) -> None:
    """A shutdown keeps back time for the loss report, as long as the step a flush is
    inside may take: the decode of one received batch or one export call. Sizing it by
    the whole backlog left a 10,000-record backlog at 128 MB a third of the window."""
    pipeline = Pipeline([FileExporter(str(tmp_path / "out.ndjson"))], str(tmp_path / "spool"), 64 << 20)
    for first in range(0, 5000, 1000):
        pipeline.accept(body(first, 1000))
    pipeline.accept(body(5000, 1200))
    assert sum(entry[2] for entry in pipeline.channels[0].held) == 6200  # records held
    assert pipeline.largest_step_records() == 1200  # the largest batch still to decode
    pipeline.flush(5.0)
    assert pipeline.largest_step_records() == 0
    pipeline.accept(body(6200, 100))
    assert pipeline.largest_step_records() == 100


def test_a_backlog_past_the_cap_wakes_the_event_loop_as_it_arrives(tmp_path: Path) -> None:
    """Registered for no events, the extension exports when an invocation ends; a
    backlog past ``MAX_UNFLUSHED_BYTES`` is exported as soon as it arrives instead, so
    that a shutdown never meets more than its 500 ms can take."""
    import os
    import select

    from lambda_wrapper.export import MAX_UNFLUSHED_BYTES
    from lambda_wrapper.extension import InternalExtension
    from lambda_wrapper.settings import Settings

    pipeline = Pipeline([FileExporter(str(tmp_path / "out.ndjson"))], str(tmp_path / "spool"), 64 << 20)
    extension = InternalExtension(Settings({}), pipeline, ["function"])

    def woken() -> bool:
        ready = select.select([extension._wake_read], [], [], 0)[0]
        if ready:
            os.read(extension._wake_read, 512)
        return bool(ready)

    small = body(0, 10)
    extension.listener.sink(small)
    assert not woken()
    lines = 0
    while pipeline.unflushed_bytes + len(body(0, 1000)) < MAX_UNFLUSHED_BYTES:
        extension.listener.sink(body(lines, 1000))
        lines += 1000
        assert not woken()
    extension.listener.sink(body(lines, 1000))
    assert woken()


def test_a_loss_count_beside_a_running_export_reports_that_call_apart(tmp_path: Path) -> None:
    """A flush thread inside an export call when the loss report cannot wait any longer:
    the call's records are neither counted lost (they are written a moment later) nor
    left out; they are reported as in flight, and nothing else is sent after the count."""
    entered, release = threading.Event(), threading.Event()

    class SlowFile(FileExporter):
        def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
            if events and events[0].type == "function" and not entered.is_set():
                entered.set()
                release.wait(5.0)
            super().export(events, deadline)

    output = tmp_path / "telemetry.ndjson"
    pipeline = Pipeline([SlowFile(str(output))], str(tmp_path / "spool"), 8 * 1024 * 1024)
    pipeline.accept(body(0, 300))
    pipeline.accept(body(300, 300))  # 600 > one call's 500: a second call
    flusher = threading.Thread(target=pipeline.flush, args=(5.0,))
    flusher.start()
    assert entered.wait(5.0)
    losses = pipeline.give_up("shutdown", time.monotonic() + 0.1)
    release.set()
    flusher.join(5.0)

    assert losses["file"]["droppedRecords"] == 300 and losses["file"]["inFlightRecords"] == 300
    assert losses["file"]["inFlightByType"] == {"function": 300, "other": 0}
    records = file_records(output)
    lines = [r["record"] for r in records if r["type"] == "function"]
    assert lines == [f"line {n}\n" for n in range(300)]  # the call in flight, and nothing after
    loss = [r["record"] for r in records if r["type"] == "lambda_wrapper.loss"]
    assert [(entry["droppedRecords"], entry["inFlightRecords"]) for entry in loss] == [(300, 300)]
