"""Log lines taken out of a batch undecoded (``log_lines.split_entries``, ``decode_verbatim``):
a batch is split only where its framing proves where each entry ends, and what comes out
is what decoding would have made."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_wrapper.export import Exporter, Pipeline, count_by_type, count_functions
from lambda_wrapper.export.emf import EmfExporter
from lambda_wrapper.export.file import FileExporter
from lambda_wrapper.instruments import SELF, SourceArbiter
from lambda_wrapper.log_lines import (
    ENTRY_CLOSING,
    ENTRY_OPENING,
    decode_batch,
    decode_verbatim,
    split_entries,
    verbatim_type,
    without_log_lines,
)
from lambda_wrapper.telemetry import TelemetryEvent

TIME = "2026-05-01T10:00:00.000Z"
OWN_LINE = '{"logger": "lambda_wrapper", "level": "info", "event": "own"}\n'
OWN_EMF = {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [
    {"Namespace": "LambdaWrapper", "Dimensions": [["a"]], "Metrics": [{"Name": "Invocations"}]}]}, "a": 1}
# Our EMF document as the function's text line (the default log format), arrays in it.
OWN_EMF_LINE = json.dumps(OWN_EMF, separators=(",", ":")) + "\n"

# Any JSON value, objects keyed "time" first among them: where a batch's separator could
# be met inside a record.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(['},{"time":"', "[", ": [", "\u2028", "é", '"', "\\", "platform.report"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["time", "type", "record", "a"]), inner, max_size=3)
    | st.builds(lambda value: {"time": value}, inner),
    max_leaves=8,
)
ENTRIES = st.lists(
    st.builds(
        lambda time, kind, record: {"time": time, "type": kind, "record": record},
        st.sampled_from([TIME, "2026-05-01T10:00:00.000123Z", "x"]),
        st.sampled_from(["function", "extension", "platform.start", "platform.report"]),
        JSON_VALUES | st.sampled_from([OWN_LINE, "[INFO]\tline\n", OWN_EMF, OWN_EMF_LINE, 'a: [1, 2]',
                                       'a\\": [', 'x,[', '"[', "[[", '\\\\": [']),
    ),
    min_size=1, max_size=6,
)


def whole(entry: bytes) -> Any:
    return json.loads(ENTRY_OPENING + entry + ENTRY_CLOSING)


def comparable(event: TelemetryEvent | bytes) -> object:
    """An event, or an entry left as bytes, as the entry it stands for."""
    if isinstance(event, bytes):
        return whole(event)
    return {"time": event.time, "type": event.type, "record": event.record}


def compact(entries: list[dict[str, object]], **options: object) -> bytes:
    return json.dumps(entries, separators=(",", ":"), **options).encode()  # type: ignore[arg-type]


@settings(max_examples=400)
@given(entries=ENTRIES, ensure_ascii=st.booleans())
def test_a_split_batch_gives_back_each_entry(
        entries: list[dict[str, object]], ensure_ascii: bool) -> None:
    body = compact(entries, ensure_ascii=ensure_ascii)
    pieces = split_entries(body)
    if pieces is not None:
        assert [whole(piece) for piece in pieces] == entries


@settings(max_examples=400)
@given(entries=ENTRIES, ensure_ascii=st.booleans())
def test_what_is_taken_verbatim_is_what_decoding_makes(
        entries: list[dict[str, object]], ensure_ascii: bool) -> None:
    body = compact(entries, ensure_ascii=ensure_ascii)
    decoded = decode_batch(body, skip_own=True)
    taken = decode_verbatim(body)
    if taken is None:
        return
    assert [comparable(event) for event in taken.events] == [comparable(event) for event in decoded.events]
    assert (taken.unread, taken.own) == (decoded.unread, decoded.own)
    assert len(taken.malformed) == len(decoded.malformed)
    for event in taken.events:
        if isinstance(event, bytes):
            assert verbatim_type(event) == whole(event)["type"]
    # What a loss count or a split batch's accounting reads of them.
    assert count_by_type(taken.events) == count_by_type(decoded.events)
    assert count_functions(taken.events) == count_functions(decoded.events)


class PlatformOnly(Exporter):
    """Reads no log line, like the EMF exporter; keeps what each export call got."""

    name = "platform-only"
    local = True
    telemetry_types = ("platform",)

    def __init__(self) -> None:
        self.calls: list[list[TelemetryEvent]] = []

    def prepare(self) -> None:
        pass

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        self.calls.append(list(events))


def entry(record: object, kind: str = "function", time: str = TIME) -> dict[str, object]:
    return {"time": time, "type": kind, "record": record}


def test_a_batch_of_plain_log_lines_is_split_not_decoded() -> None:
    """Brackets in text lines (the logging module's prefix, a list printed, our EMF
    document's arrays) are told from arrays."""
    entries = [entry(f"[INFO]\tline {n}: [1, 2] and [[3]]\n") for n in range(2)]
    entries.append(entry(OWN_EMF_LINE.replace("CloudWatchMetrics", "Elsewhere")))
    entries.append(entry({"message": "json: [1]", "level": "INFO", "quoted": 'a\\": ['}, "extension"))
    taken = decode_verbatim(compact(entries))
    assert taken is not None
    assert all(isinstance(event, bytes) for event in taken.events)
    assert [verbatim_type(event) for event in taken.events] == ["function"] * 3 + ["extension"]  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [
    json.dumps([entry("spaced\n")]).encode(),
    compact([entry({"spans": [{"time": "a"}, {"time": "b"}]})]),
    compact([entry({"list": []})]),
    compact([entry({"a\\": [1]})]),
    compact([entry({"a": 1, "b": True, "c": None, "d": "x", "e": [1]})]),
    compact([entry([1])]),
    b'[{"time":"2026-05-01T10:00:00.000Z","type":"function","record":"x"},\n{"time":"2026-05-01T10:00:00.000Z",'
    b'"type":"function","record":"y"}]',
    compact([entry("caf\xe9")], ensure_ascii=False).replace("é".encode(), b"\xe9"),
    b"[]",
    b'{"time":"x"}',
], ids=["spaced", "nested array of objects", "nested empty array", "key ending in a backslash",
     "array after each kind of value", "array record", "line break", "not UTF-8", "empty", "object"])
def test_a_batch_whose_framing_proves_nothing_is_decoded(body: bytes) -> None:
    assert decode_verbatim(body) is None


def test_an_unreadable_entry_sends_the_batch_to_the_decoder() -> None:
    body = b'[{"time":"2026-05-01T10:00:00.000Z","type":"function","record":"x"},' \
           b'{"time":"2026-05-01T10:00:00.000Z","type":"platform.start","record":{"a":}}]'
    assert decode_verbatim(body) is None


def test_own_lines_and_other_times_are_decoded_and_own_lines_skipped() -> None:
    entries = [entry("user\n"), entry(OWN_LINE), entry(OWN_EMF_LINE),
               entry("odd time\n", time="2026-05-01T10:00:00Z"), entry({"requestId": "r"}, "platform.start")]
    taken = decode_verbatim(compact(entries))
    assert taken is not None and taken.own == 2
    assert [type(event).__name__ for event in taken.events] == ["bytes", "TelemetryEvent", "TelemetryEvent"]
    assert count_by_type(taken.events) == {"function": 2, "platform.start": 1}


def test_the_pipeline_feeds_entries_only_to_the_exporter_that_takes_them(tmp_path: Path) -> None:
    """Beside the file exporter, one that reads platform records only gets events; with
    the arbiter dropping the platform's invocation records, the file keeps the log lines
    in order."""
    platform_only = PlatformOnly()
    path = tmp_path / "telemetry.ndjson"
    pipeline = Pipeline([FileExporter(str(path)), platform_only], str(tmp_path / "spool"), 1 << 20)
    pipeline.arbiter = SourceArbiter(SELF)
    entries = [entry({"requestId": "r"}, "platform.start"), entry("one\n"),
               entry({"requestId": "r"}, "platform.report"), entry("two\n"),
               entry({"phase": "init"}, "platform.initStart")]
    pipeline.accept(compact(entries))
    pipeline.flush(5.0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [entries[1], entries[3], entries[4]]
    assert [[event.type for event in events] for events in platform_only.calls] == [["platform.initStart"]]
    assert pipeline.stats.events == 5  # counted as decoded, before the arbiter


@settings(max_examples=300)
@given(entries=ENTRIES, ensure_ascii=st.booleans())
def test_a_batch_less_its_log_lines_keeps_exactly_the_platform_entries(
        entries: list[dict[str, object]], ensure_ascii: bool) -> None:
    body = compact(entries, ensure_ascii=ensure_ascii)
    reduced = without_log_lines(body)
    if reduced is None:
        return
    assert json.loads(reduced) == [e for e in entries if str(e["type"]).startswith("platform.")]
    assert reduced != body


def test_a_chatty_batch_is_spooled_without_its_lines_for_an_exporter_that_reads_none(tmp_path: Path) -> None:
    """EMF beside the file exporter: the lines are written to /tmp once; EMF's spool and
    its loss count hold the platform's records only, the file exporter's all of them."""
    entries = [entry({"requestId": "r"}, "platform.start")] + [entry(f"line {n}\n") for n in range(50)]
    entries.append(entry({"requestId": "r", "status": "success"}, "platform.runtimeDone"))
    lines_only = [entry(f"more {n}\n") for n in range(20)]
    pipeline = Pipeline([EmfExporter("LambdaWrapper", ()), FileExporter(str(tmp_path / "t.ndjson"))],
                        str(tmp_path / "spool"), 1 << 20)
    pipeline.accept(compact(entries))
    pipeline.accept(compact(lines_only))
    emf, file = pipeline.channels
    assert [held[2:] for held in emf.held] == [(2, 0), (0, 0)]
    assert [held[2:] for held in file.held] == [(52, 50), (20, 20)]
    spooled = (Path(emf.spool.directory) / "000000000001.seg").read_bytes()
    assert b"line 0" not in spooled and b"platform.runtimeDone" in spooled
    losses = pipeline.give_up("test", float("inf"))
    assert (losses["emf"]["droppedRecords"], losses["file"]["droppedRecords"]) == (2, 72)


def test_what_an_exporter_that_reads_no_log_line_exports_of_a_chatty_batch(tmp_path: Path) -> None:
    platform_only = PlatformOnly()
    pipeline = Pipeline([platform_only, FileExporter(str(tmp_path / "t.ndjson"))], str(tmp_path / "spool"),
                        1 << 20)
    entries = [entry({"requestId": "r"}, "platform.start"), entry("one\n"),
               entry("odd time\n", time="2026-05-01T10:00:00Z"), entry({"requestId": "r"}, "platform.report")]
    pipeline.accept(compact(entries))
    pipeline.flush(5.0)
    assert [[event.type for event in events] for events in platform_only.calls] == [
        ["platform.start", "platform.report"]]
    assert pipeline.channels[0].spool.cursor == 1  # delivered: nothing left to count


def test_a_platform_type_inside_a_record_keeps_the_batch_whole() -> None:
    entries = [entry({"requestId": "r"}, "platform.start"),
               entry({"a": "x", "type": "platform.report", "record": 1}), entry("line\n")]
    assert without_log_lines(compact(entries)) is None
    assert without_log_lines(compact(entries[:1] + entries[2:])) == compact(entries[:1])
    assert without_log_lines(compact(entries[2:])) == b"[]"
