"""Property tests: decoding never fails on content, and timestamps agree with ``datetime``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_wrapper.log_lines import decode_batch, decode_events, is_own_diagnostic
from lambda_wrapper.malformed import UnreadableBatch
from lambda_wrapper.telemetry import LOG_TYPES, DecodedBatch, decode_platform_events, parse_time_ms

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
ENVELOPE_KEYS = ("time", "type", "record", "requestId", "extra")
TYPES = ("function", "extension", "platform.start", "platform.report", "platform.fault", "platform.new", "")
LOG_LINES = (
    '{"logger": "lambda_wrapper", "event": "x"}',
    '{"_aws": {"CloudWatchMetrics": [{"Namespace": "N"}]}}',
    "[INFO]\t2024-01-01T00:00:00.000Z\tr\tm\n",
    "[ERROR] boom",
)
envelope_like = st.dictionaries(
    st.sampled_from(ENVELOPE_KEYS),
    st.one_of(st.sampled_from(TYPES), st.sampled_from(LOG_LINES), st.text(max_size=30), json_values),
)
records = st.one_of(
    json_values,
    st.sampled_from(LOG_LINES),
    st.dictionaries(
        st.sampled_from(
            ("requestId", "metrics", "message", "level", "log_level", "logger", "_aws", "status")
        ),
        json_values | st.sampled_from(("lambda_wrapper", "INFO")),
    ),
)
events = st.builds(
    lambda t, ty, r: {"time": t, "type": ty, "record": r},
    st.text(max_size=40),
    st.sampled_from(TYPES),
    records,
)


def check_batch(batch: DecodedBatch, count: int) -> None:
    assert len(batch.events) + len(batch.malformed) == count
    indexes = [entry.index for entry in batch.malformed]
    assert indexes == sorted(set(indexes))
    for decoded in batch.events:
        assert decoded.epoch_ms is None or isinstance(decoded.epoch_ms, float)
        output = decoded.to_output()
        assert (output["time"], output["type"]) == (decoded.time, decoded.type)
        assert output["record"] is decoded.record
        json.dumps(output)
        is_own_diagnostic(decoded)
        is_own_diagnostic(decoded, emf_namespaces={"N"})
        _ = (decoded.status, decoded.error_type, decoded.level, decoded.extra_fields)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_unreadable_batch(body: bytes) -> None:
    try:
        batch = decode_batch(body)
    except UnreadableBatch:
        return
    check_batch(batch, len(json.loads(body)))


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_values_decode_or_raise_unreadable_batch(value: object) -> None:
    body = json.dumps(value)
    if isinstance(value, list):
        check_batch(decode_batch(body), len(value))
        check_batch(decode_batch(body.encode()), len(value))
    else:
        try:
            decode_batch(body)
        except UnreadableBatch as exc:
            assert "expected an array" in str(exc)
        else:
            raise AssertionError("a non-array body must be unreadable")


@settings(max_examples=300)
@given(st.lists(st.one_of(envelope_like, events, json_values), max_size=20))
def test_envelope_like_items_never_raise(items: list[object]) -> None:
    batch = decode_events(items)
    check_batch(batch, len(items))
    for decoded in batch.events:
        assert isinstance(decoded.time, str) and isinstance(decoded.type, str)
    # The pipeline's decoder where no exporter reads log lines: the same, log lines counted.
    platform = decode_platform_events(items)
    check_batch(platform, len(items) - platform.unread)
    full = decode_events(items, unread_types=LOG_TYPES)
    def fields(batch: DecodedBatch) -> list[tuple[object, ...]]:
        return [(event.time, event.type, event.record, event.request_id, event.metrics, event.message)
                for event in batch.events]

    assert fields(platform) == fields(full)
    assert (platform.malformed, platform.unread) == (full.malformed, full.unread)


@given(st.text(max_size=60))
def test_arbitrary_text_timestamps_never_raise(text: str) -> None:
    result = parse_time_ms(text)
    assert result is None or isinstance(result, float)


aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(timezone.utc)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timedelta(minutes=minutes))


@given(
    aware_datetimes, offsets, st.sampled_from(("Z", "+HH:MM", "+HHMM", "none")), st.sampled_from((0, 3, 6))
)
def test_timestamps_agree_with_datetime(moment: datetime, offset: timedelta, zone: str, digits: int) -> None:
    if zone in ("Z", "none"):
        offset = timedelta(0)
    local = moment.astimezone(timezone(offset))
    fraction = f"{local.microsecond:06d}"[:digits]
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "")
    if zone == "Z":
        text += "Z"
    elif zone != "none":
        sign = "-" if offset < timedelta(0) else "+"
        hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
        text += f"{sign}{hours:02d}:{minutes:02d}" if zone == "+HH:MM" else f"{sign}{hours:02d}{minutes:02d}"
    whole_seconds = moment.replace(microsecond=0).timestamp() * 1000
    expected = whole_seconds + int(fraction.ljust(6, "0")) / 1000 if digits else whole_seconds
    parsed = parse_time_ms(text)
    assert parsed is not None, text
    assert abs(parsed - expected) < 1e-3, text
