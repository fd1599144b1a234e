"""The file exporter: a log line is its entry as the platform sent it, any other record
the generic encoding; the fast paths write what the general one makes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_wrapper.export import MAX_LOCAL_EVENTS_PER_CALL, Pipeline
from lambda_wrapper.export.file import _ENCODER, FileExporter, _lines
from lambda_wrapper.log_lines import decode_batch, decode_verbatim
from lambda_wrapper.telemetry import InvocationClassifier, TelemetryEvent


def log_lines(events: list[TelemetryEvent]) -> list[str | None]:
    """The file exporter's line of each log line, None for any other event."""
    return _lines(events, lambda event: None)


def log_line(event: TelemetryEvent) -> str | None:
    return log_lines([event])[0]


def entry_line(event: TelemetryEvent) -> str:
    """The general line of a log line: its entry, compact."""
    return _ENCODER.encode({"time": event.time, "type": event.type, "record": event.record}) + "\n"


LINES = st.one_of(
    st.text(),
    st.builds(lambda level, rest: f"[{level}]\t2026-01-01T00:00:00.000Z\t{rest}",
              st.sampled_from(["INFO", "ERROR", "info", "X"]), st.text()),
    st.sampled_from(["line 1\n", "é ✓ \u2028 \x00 \"quoted\" \\ \n", "[INFO]\t2026\tREQ-1\tmessage\n",
                     "\n", ""]),
)


@settings(max_examples=300)
@given(kind=st.sampled_from(["function", "extension"]), line=LINES)
def test_log_line_matches_the_generic_encoding(kind: str, line: str) -> None:
    body = json.dumps([{"time": "2026-05-01T10:00:00.000Z", "type": kind, "record": line}])
    (event,) = decode_batch(body).events
    assert log_line(event) == entry_line(event)


JSON_RECORDS = st.fixed_dictionaries(
    {"message": st.one_of(st.text(), st.integers())},
    optional={"level": st.sampled_from(["INFO", "error"]), "requestId": st.text(),
              "metrics": st.dictionaries(st.text(), st.integers()), "logger": st.text(),
              "extra": st.lists(st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False)))},
)


@settings(max_examples=200)
@given(kind=st.sampled_from(["function", "extension"]), record=JSON_RECORDS)
def test_json_log_line_matches_the_generic_encoding(kind: str, record: dict[str, object]) -> None:
    body = json.dumps([{"time": "2026-05-01T10:00:00.000Z", "type": kind, "record": record}])
    (event,) = decode_batch(body).events
    assert log_line(event) == entry_line(event)


def test_an_entry_with_fields_beside_time_type_and_record_keeps_them() -> None:
    entry = {"time": "2026-05-01T10:00:00.000Z", "type": "function", "record": "x\n", "future": [1]}
    (event,) = decode_batch(json.dumps([entry])).events
    assert json.loads(log_line(event) or "") == entry


def test_lines_of_consecutive_times_and_types_keep_their_own() -> None:
    body = json.dumps([{"time": time_, "type": kind, "record": "x\n"}
                       for time_, kind in (("2026-05-01T10:00:00.000Z", "function"),
                                           ("2026-05-01T10:00:00.000Z", "extension"),
                                           ("2026-05-01T10:00:00.001Z", "extension"))])
    lines = [json.loads(line or "null") for line in log_lines(decode_batch(body).events)]
    assert [(line["time"], line["type"]) for line in lines] == [
        ("2026-05-01T10:00:00.000Z", "function"), ("2026-05-01T10:00:00.000Z", "extension"),
        ("2026-05-01T10:00:00.001Z", "extension")]


def test_other_events_take_the_generic_encoding() -> None:
    body = json.dumps([
        {"time": "2026-05-01T10:00:00.000Z", "type": "platform.start", "record": {"requestId": "r"}},
        {"time": "2026-05-01T10:00:00.000Z", "type": "platform.report", "record": {"requestId": "r"}},
    ])
    assert [log_line(event) for event in decode_batch(body).events] == [None, None]


TIME = "2026-05-01T10:00:00.000Z"
REQUEST = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
OTHER_REQUEST = "0b4e8e7a-5d1c-4c0b-9a0e-6b2f1f6f2a11"
# Every kind of record a file line is made from, the log lines the usual ones first.
VARIED_RECORDS: list[tuple[str, object]] = [
    ("platform.initStart", {"initializationType": "on-demand", "phase": "init"}),
    ("platform.start", {"requestId": REQUEST, "version": "$LATEST"}),
    ("function", "a print()ed line\n"),
    ("function", "a line without its newline"),
    ("function", f"[INFO]\t{TIME}\t{REQUEST}\tthe logging module's line\n"),
    ("function", f"[ERROR]\t{TIME}\t{REQUEST}\tno newline"),
    ("function", "[ERROR] Runtime.ExitError: exit status 1\n"),
    ("function", "[my_module.func] started\n"),
    ("extension", "an extension's line\n"),
    ("extension", f"[WARN]\t{TIME}\t{REQUEST}\textension\n"),
    ("function", 'é ✓ \u2028 \x00 \x1f "quoted" \\ \t\r\n'),
    ("function", "ends in a backslash and n: \\n"),
    ("function", "ends in an escaped backslash \\\n"),
    ("function", "two newlines\n\n"),
    ("function", "\n"),
    ("function", ""),
    ("function", "  indented {not json}\n"),
    ("function", "\U0001f600 astral\n"),
    ("function", {"timestamp": TIME, "level": "INFO", "message": "a JSON-format line", "logger": "root",
                  "requestId": REQUEST}),
    ("function", {"timestamp": TIME, "log_level": "error", "message": "ends in a newline\n",
                  "errorType": "ValueError", "stackTrace": ["  File \"x.py\"\n"]}),
    ("function", {"message": 42, "metrics": {"n": 1.5}, "requestId": REQUEST}),
    ("function", {"message": "the next invocation's", "requestId": OTHER_REQUEST}),
    ("function", f"[INFO]\t{TIME}\t{OTHER_REQUEST}\tand its text line\n"),
    ("function", f"[INFO]\t{TIME}\t{REQUEST}\tthe first one's again\n"),
    ("extension", {"message": "é", "nested": {"list": [None, True, 1e100]}}),
    ("function", None),
    ("function", ["a", "list"]),
    ("function", 7),
    ("platform.runtimeDone", {"requestId": REQUEST, "status": "error", "errorType": "Runtime.ExitError",
                              "metrics": {"durationMs": 12.0}}),
    ("platform.report", {"requestId": REQUEST, "status": "error",
                         "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 128,
                                     "maxMemoryUsedMB": 128}}),
    ("platform.fault", "RequestId: x Process exited before completing request\n"),
    ("platform.logsDropped", {"reason": "Consumer seems to have fallen behind", "droppedRecords": 3}),
    ("a.future.type", {"anything": ["goes"]}),
]


def generic_lines(body: str | bytes, skip_own: bool = False) -> str:
    """What the file holds for ``body`` made the general way: a log line's entry, any
    other event's ``to_output`` (with the report's classification), with the shared
    encoder, event after event."""
    output = InvocationClassifier().output
    events = decode_batch(body, skip_own=skip_own).events
    return "".join(entry_line(event) if event.type in ("function", "extension")
                   else _ENCODER.encode(output(event)) + "\n" for event in events)


def has_array(value: object) -> bool:
    if isinstance(value, dict):
        return any(has_array(item) for item in value.values())
    return isinstance(value, list)


def parsed(lines: str) -> list[object]:
    # Lines end in "\n" only: a verbatim entry may hold U+2028, which ``splitlines`` splits at.
    return [json.loads(line) for line in lines.split("\n")[:-1]]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_the_file_holds_the_generic_encoding_of_every_kind_of_record(
        tmp_path: Path, separators: tuple[str, str]) -> None:
    entries = [{"time": TIME if index % 3 else f"2026-05-01T10:00:0{index % 10}.000Z", "type": kind,
                "record": record} for index, (kind, record) in enumerate(VARIED_RECORDS)]
    body = json.dumps(entries, separators=separators, ensure_ascii=False)
    path = tmp_path / "not yet made" / "telemetry.ndjson"
    exporter = FileExporter(str(path))
    exporter.export(decode_batch(body).events, time.monotonic() + 5)
    exporter.export(decode_batch(body).events, time.monotonic() + 5)
    expected = generic_lines(body)
    assert path.read_text(encoding="utf-8") == expected + expected
    assert exporter.exported == 2 * len(VARIED_RECORDS)


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["escaped", "utf-8"])
def test_the_pipeline_writes_what_the_general_path_makes(tmp_path: Path, ensure_ascii: bool) -> None:
    """Through the pipeline (log lines taken as they came, own lines skipped, a batch
    exported in parts) the file holds the same records, and a removed directory is made
    again."""
    # A batch holding an array is decoded whole (``log_lines.split_entries``): none here.
    entries = [{"time": TIME, "type": kind, "record": record} for kind, record in VARIED_RECORDS * 40
               if not has_array(record)]
    entries.insert(5, {"time": TIME, "type": "function",
                       "record": '{"logger": "lambda_wrapper", "event": "own line"}\n'})
    body = json.dumps(entries, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()
    path = tmp_path / "out" / "telemetry.ndjson"
    pipeline = Pipeline([FileExporter(str(path))], str(tmp_path / "spool"), 8 * 1024 * 1024)
    pipeline.accept(body)
    pipeline.flush(5.0)
    first = path.read_text(encoding="utf-8")
    path.unlink()
    path.parent.rmdir()
    pipeline.accept(body)
    pipeline.flush(5.0)
    assert len(entries) > MAX_LOCAL_EVENTS_PER_CALL
    assert parsed(first + path.read_text(encoding="utf-8")) == parsed(generic_lines(body, skip_own=True)) * 2
    assert pipeline.stats.own_lines_skipped == 2
    taken = decode_verbatim(body)
    assert taken is not None and sum(type(event) is bytes for event in taken.events) > len(entries) // 2
