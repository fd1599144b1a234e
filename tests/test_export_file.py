"""The file exporter's fast encoding of log lines is byte for byte the generic one."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_wrapper.export.file import _ENCODER, _log_line, _log_lines
from lambda_wrapper.telemetry import decode_batch

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
    assert _log_line(event) == _ENCODER.encode(event.to_output()) + "\n"


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
    assert _log_line(event) == _ENCODER.encode(event.to_output()) + "\n"


def test_lines_of_consecutive_times_and_types_keep_their_own() -> None:
    body = json.dumps([{"time": time_, "type": kind, "record": "x\n"}
                       for time_, kind in (("2026-05-01T10:00:00.000Z", "function"),
                                           ("2026-05-01T10:00:00.000Z", "extension"),
                                           ("2026-05-01T10:00:00.001Z", "extension"))])
    lines = [json.loads(line or "null") for line in _log_lines(decode_batch(body).events)]
    assert [(line["time"], line["type"]) for line in lines] == [
        ("2026-05-01T10:00:00.000Z", "function"), ("2026-05-01T10:00:00.000Z", "extension"),
        ("2026-05-01T10:00:00.001Z", "extension")]


def test_other_events_take_the_generic_encoding() -> None:
    body = json.dumps([
        {"time": "2026-05-01T10:00:00.000Z", "type": "platform.start", "record": {"requestId": "r"}},
        {"time": "2026-05-01T10:00:00.000Z", "type": "platform.report", "record": {"requestId": "r"}},
    ])
    assert [_log_line(event) for event in decode_batch(body).events] == [None, None]
