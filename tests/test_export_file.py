"""The file exporter's fast encoding of log lines is byte for byte the generic one."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_wrapper.export.file import _ENCODER, _log_line
from lambda_wrapper.telemetry.decode import decode_batch

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


def test_other_events_take_the_generic_encoding() -> None:
    body = json.dumps([
        {"time": "2026-05-01T10:00:00.000Z", "type": "function", "record": {"message": "json log"}},
        {"time": "2026-05-01T10:00:00.000Z", "type": "platform.start", "record": {"requestId": "r"}},
    ])
    assert [_log_line(event) for event in decode_batch(body).events] == [None, None]
