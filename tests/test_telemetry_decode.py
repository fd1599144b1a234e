"""Decoding of Telemetry API batches: fixtures, schema variants, leniency and the decode command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import API_EXCHANGES, batch_bodies, batches, load, raw_events, telemetry_files
from lambda_wrapper.log_lines import _text_log_prefix, decode_batch, decode_events, is_own_diagnostic
from lambda_wrapper.malformed import MalformedEntry, UnreadableBatch
from lambda_wrapper.telemetry import (
    LOG_TYPES,
    TelemetryEvent,
    decode_platform_events,
    parse_batch,
    parse_time_ms,
    platform_event,
)
from lambda_wrapper_dev.telemetry_decode import decode_files

# Event types of each hand-written fixture file, batch after batch, in delivery order.
WRITTEN_TYPES: dict[str, list[str]] = {
    "written-logs-api-2020-08-15.json": [
        "platform.logsSubscription",
        "platform.extension",
        "platform.start",
        "function",
        "extension",
        "platform.runtimeDone",
        "platform.end",
        "platform.report",
        "platform.fault",
        "platform.logsDropped",
    ],
    "written-schema-2022-07-01.json": [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
        "platform.extension",
        "platform.telemetrySubscription",
        "platform.logsDropped",
        "function",
        "extension",
    ],
    "written-schema-2022-12-13.json": [
        "platform.initStart",
        "function",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "function",
        "function",
        "extension",
        "platform.runtimeDone",
        "platform.report",
    ],
    "written-schema-2025-01-29.json": [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "function",
        "platform.runtimeDone",
        "platform.report",
        "platform.logsDropped",
    ],
    "written-snapstart-restore.json": [
        "platform.restoreStart",
        "platform.restoreRuntimeDone",
        "platform.restoreReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
        "platform.restoreStart",
        "platform.restoreRuntimeDone",
        "platform.restoreReport",
    ],
}
# Types each captured file must hold (a recapture may change counts and order, not these).
INIT_AND_INVOKE = {
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.telemetrySubscription",
    "platform.extension",
    "platform.start",
    "platform.runtimeDone",
    "platform.report",
    "function",
    "extension",
}
CAPTURED_TYPES: dict[str, set[str]] = {
    "captured-rie-managed-instances-2025-01-29.json": INIT_AND_INVOKE - {"platform.runtimeDone", "extension"},
    "captured-sandbox-logs-api-2021-03-18.json": {
        "platform.logsSubscription",
        "platform.extension",
        "platform.start",
        "platform.runtimeDone",
        "platform.end",
        "platform.report",
        "function",
        "extension",
    },
    "captured-sandbox-telemetry-2022-12-13-json-logs.json": INIT_AND_INVOKE,
    "captured-sandbox-telemetry-2022-12-13-text-logs.json": INIT_AND_INVOKE,
}
# Every record type of the Telemetry API schemas 2022-07-01, 2022-12-13 and 2025-01-29,
# and the Logs API's own: the fixtures together must hold each of them.
DOCUMENTED_TYPES = {
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.start",
    "platform.runtimeDone",
    "platform.report",
    "platform.restoreStart",
    "platform.restoreRuntimeDone",
    "platform.restoreReport",
    "platform.extension",
    "platform.telemetrySubscription",
    "platform.logsDropped",
    "function",
    "extension",
    "platform.end",
    "platform.fault",
    "platform.logsSubscription",
}
TEXT_LOGS = "captured-sandbox-telemetry-2022-12-13-text-logs.json"
JSON_LOGS = "captured-sandbox-telemetry-2022-12-13-json-logs.json"
MANAGED_INSTANCES = "captured-rie-managed-instances-2025-01-29.json"


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp() * 1000


def event(type_: str, record: object, time_: str = "2024-05-01T10:00:00.000Z") -> dict[str, object]:
    return {"time": time_, "type": type_, "record": record}


def decode_one(type_: str, record: object, time_: str = "2024-05-01T10:00:00.000Z") -> TelemetryEvent:
    batch = decode_events([event(type_, record, time_)])
    assert batch.malformed == []
    [decoded] = batch.events
    return decoded


def run_decode_files(*paths: str | Path) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    status = decode_files([str(path) for path in paths], out, err)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return status, lines, err.getvalue()


# --- fixtures -------------------------------------------------------------------------------


def decoded(name: str) -> list[TelemetryEvent]:
    events: list[TelemetryEvent] = []
    for body in batch_bodies(name):
        batch = decode_batch(body)
        assert batch.malformed == []
        events += batch.events
    return events


def test_fixture_directory_is_fully_covered() -> None:
    on_disk = {path.name for path in telemetry_files()}
    assert on_disk == set(WRITTEN_TYPES) | set(CAPTURED_TYPES)
    assert API_EXCHANGES.is_file()


def test_every_fixture_says_where_it_comes_from() -> None:
    for path in [*telemetry_files(), API_EXCHANGES]:
        about = load(path)["_about"]
        if path.name.startswith("written-"):
            assert about["source"] == "written" and "documented" in about["how"], path.name
        else:
            assert about["source"] == "captured", path.name
            assert about["platform"] and about["how"] and about["captured_on"], path.name
            assert {"python", "awslambdaric", "lambda-wrapper"} <= set(about["versions"]), path.name


def test_fixtures_together_hold_every_documented_type_and_record_shape() -> None:
    events = [event for path in telemetry_files() for event in decoded(path.name)]
    assert {event.type for event in events} >= DOCUMENTED_TYPES
    function_records = [event.record for event in events if event.type == "function"]
    assert any(isinstance(record, str) and record.startswith("[INFO]\t") for record in function_records)
    assert any(isinstance(record, dict) and "level" in record for record in function_records)
    assert any(isinstance(record, dict) and "log_level" in record for record in function_records)
    extension_records = [event.record for event in events if event.type == "extension"]
    assert any(isinstance(record, str) for record in extension_records)
    assert any(isinstance(record, dict) for record in extension_records)
    init_types = {
        event.record.get("initializationType")
        for event in events
        if event.type == "platform.initStart" and isinstance(event.record, dict)
    }
    assert {"on-demand", "provisioned-concurrency", "lambda-managed-instances"} <= init_types


@pytest.mark.parametrize("name", sorted(WRITTEN_TYPES))
def test_written_fixture_decodes_every_event_in_order(name: str) -> None:
    assert [e.type for e in decoded(name)] == WRITTEN_TYPES[name]


@pytest.mark.parametrize("name", sorted([*WRITTEN_TYPES, *CAPTURED_TYPES]))
def test_fixture_batch_decodes_every_event_as_delivered(name: str) -> None:
    assert CAPTURED_TYPES.get(name, set()) <= {e.type for e in decoded(name)}
    for body, raw in zip(batch_bodies(name), batches(name), strict=True):
        batch = decode_batch(body)
        assert batch.malformed == []
        for event, entry in zip(batch.events, raw, strict=True):
            assert (event.type, event.time, event.record) == (entry["type"], entry["time"], entry["record"])
            assert event.epoch_ms is not None, event.time


def test_schema_2022_07_01_normalised_fields() -> None:
    by_type = {e.type: e for e in decoded("written-schema-2022-07-01.json")}
    request_id = "0a3e4c5b-7d21-4f6e-9b8a-2c1d0e9f8a7b"

    init_start = by_type["platform.initStart"]
    assert init_start.epoch_ms == utc_ms(2023, 3, 14, 9, 26, 53) + 589
    assert init_start.request_id is None and init_start.metrics is None and init_start.message is None

    assert by_type["platform.initRuntimeDone"].status == "success"
    assert by_type["platform.initReport"].metrics == {"durationMs": 253.75}

    runtime_done = by_type["platform.runtimeDone"]
    assert runtime_done.request_id == request_id
    assert runtime_done.status == "success"
    assert runtime_done.metrics == {"durationMs": 110.5, "producedBytes": 42}
    # A span start with a colon before the milliseconds is kept untouched and still parses.
    [span] = runtime_done.record["spans"]  # type: ignore[index]
    assert span["start"] == "2023-03-14T09:26:53:851Z"
    assert parse_time_ms(span["start"]) == utc_ms(2023, 3, 14, 9, 26, 53) + 851

    report = by_type["platform.report"]
    assert report.request_id == request_id
    assert report.metrics is not None and report.metrics["billedDurationMs"] == 114
    assert report.status is None  # 2022-07-01 reports have no status

    assert by_type["platform.logsDropped"].record["droppedRecords"] == 57  # type: ignore[index]
    function = by_type["function"]
    assert function.message == "[INFO] order 1042 accepted"
    assert function.level == "INFO"
    assert function.request_id is None


def test_schema_2022_12_13_written_records() -> None:
    init_error, init_done, init_report = [
        e
        for e in decoded("written-schema-2022-12-13.json")
        if e.type in ("function", "platform.initRuntimeDone", "platform.initReport")
    ][:3]
    assert (init_error.level, init_error.error_type) == ("ERROR", "Runtime.ImportModuleError")
    assert (init_done.status, init_done.error_type) == ("error", "Runtime.ImportModuleError")
    assert init_report.metrics == {"durationMs": 361.9}
    events = decoded("written-schema-2022-12-13.json")
    request_id = "b7c1e2d3-4f5a-46b7-8c9d-0e1f2a3b4c5d"
    charging = events[5]
    assert (charging.message, charging.level, charging.request_id) == ("charging card", "INFO", request_id)
    assert events[6].error_type == "PaymentError" and events[6].message is None
    assert (events[7].type, events[7].level, events[7].message) == (
        "extension",
        "WARN",
        "collector slow to answer",
    )
    report = events[-1]
    assert (report.status, report.error_type, report.request_id) == ("error", "PaymentError", request_id)
    assert report.metrics == {
        "durationMs": 44.7,
        "billedDurationMs": 45,
        "memorySizeMB": 512,
        "maxMemoryUsedMB": 96,
    }


def test_captured_text_logs_give_levels_request_ids_and_outcomes() -> None:
    events = decoded(TEXT_LOGS)
    starts = [e.request_id for e in events if e.type == "platform.start"]
    reports = [e for e in events if e.type == "platform.report"]
    assert len(starts) == len(reports) == 4 and [r.request_id for r in reports] == starts
    assert [r.status for r in reports] == ["success", "error", "timeout", "success"]
    assert all(r.metrics is not None and r.metrics["billedDurationMs"] >= 1 for r in reports)
    # awslambdaric's text format: "[LEVEL]\t<time>\t<request id>\t<message>\n".
    logged = [
        e for e in events if e.type == "function" and isinstance(e.record, str) and e.record.startswith("[")
    ]
    info, warning = logged[0], logged[1]
    assert (info.level, info.request_id) == ("INFO", starts[0])
    assert info.message is not None and info.message.endswith("\tprocessing order 1")
    assert (warning.level, warning.request_id) == ("WARNING", starts[0])
    crash = next(e for e in logged if e.level == "ERROR")
    assert crash.message is not None and crash.message.startswith("[ERROR] ValueError: card declined\r")
    assert crash.request_id is None
    printed = next(e for e in events if e.record == "plain print output\n")
    assert printed.message == "plain print output" and printed.level is None
    # After the timeout the environment is reset: a suppressed Init in the invoke phase.
    phases = [e.record["phase"] for e in events if e.type == "platform.initStart"]  # type: ignore[index]
    assert phases == ["init", "invoke"]


def test_captured_extension_lines_keep_newline_in_record_only() -> None:
    lines = [e for e in decoded(TEXT_LOGS) if e.type == "extension"]
    assert lines[0].record == "[printing-ext] registered\n"
    assert lines[0].message == "[printing-ext] registered"
    assert all(isinstance(e.record, str) and e.record.endswith("\n") for e in lines)
    assert all(e.message is not None and not e.message.endswith("\n") for e in lines)
    # "[name] text" is not a log level.
    assert all(e.level is None for e in lines)


def test_captured_json_logs_are_objects_with_level_and_request_id() -> None:
    events = decoded(JSON_LOGS)
    first_request = next(e.request_id for e in events if e.type == "platform.start")
    records = [e for e in events if e.type == "function"]
    assert all(isinstance(e.record, dict) for e in records)
    assert (records[0].message, records[0].level, records[0].request_id) == (
        "processing order 1",
        "INFO",
        first_request,
    )
    assert records[0].record["logger"] == "capture"  # type: ignore[index]
    warning = records[1]
    assert (warning.level, warning.record["sku"]) == ("WARNING", "A-7")  # type: ignore[index]
    uncaught = next(e for e in records if e.error_type is not None)
    assert (uncaught.error_type, uncaught.level, uncaught.message) == ("ValueError", "ERROR", None)
    assert uncaught.record["errorMessage"] == "card declined"  # type: ignore[index]
    extension = next(e for e in events if e.type == "extension")
    assert (extension.message, extension.level) == ("[printing-ext] registered", "INFO")


def test_captured_managed_instances_stream() -> None:
    events = decoded(MANAGED_INSTANCES)
    [init] = [e for e in events if e.type == "platform.initStart"]
    assert init.record["initializationType"] == "lambda-managed-instances"  # type: ignore[index]
    assert init.record["instanceMaxMemory"] == 128 * 1024 * 1024  # type: ignore[index]
    [subscription] = [e for e in events if e.type == "platform.telemetrySubscription"]
    assert subscription.record["name"].startswith("lambda-wrapper.")  # type: ignore[index]
    reports = [e for e in events if e.type == "platform.report"]
    assert [r.request_id for r in reports] == [e.request_id for e in events if e.type == "platform.start"]
    assert [r.status for r in reports] == ["success", "error", "success"]
    assert reports[1].error_type is not None
    assert all(r.metrics is not None and set(r.metrics) == {"durationMs"} for r in reports)
    # RIE-LMI delivers the JSON log lines of awslambdaric as strings, kept as they came.
    json_lines = [e for e in events if e.type == "function" and str(e.record).startswith("{")]
    assert len(json_lines) == 4 and all(isinstance(e.record, str) for e in json_lines)
    assert json.loads(json_lines[0].record)["message"] == "hello from capture"  # type: ignore[arg-type]


def test_logs_api_shapes_are_recognised() -> None:
    by_type = {e.type: e for e in decoded("written-logs-api-2020-08-15.json")}
    request_id = "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f"
    assert by_type["platform.end"].request_id == request_id
    fault = by_type["platform.fault"]
    assert isinstance(fault.record, str)
    assert fault.message == fault.record
    assert fault.request_id is None
    subscription = by_type["platform.logsSubscription"]
    assert subscription.record == {
        "name": "log-shipper",
        "state": "Subscribed",
        "types": ["platform", "function"],
    }
    assert by_type["platform.runtimeDone"].status == "success"
    assert by_type["platform.report"].metrics == {
        "durationMs": 51.62,
        "billedDurationMs": 52,
        "memorySizeMB": 128,
        "maxMemoryUsedMB": 58,
        "initDurationMs": 188.4,
    }
    assert by_type["function"].level == "INFO" and by_type["function"].request_id == request_id

    captured = decoded("captured-sandbox-logs-api-2021-03-18.json")
    ends = [e.request_id for e in captured if e.type == "platform.end"]
    assert ends == [e.request_id for e in captured if e.type == "platform.start"] and len(ends) == 4
    assert not any(e.type.startswith("platform.init") for e in captured)  # not in the Logs API


def test_restore_records() -> None:
    events = decoded("written-snapstart-restore.json")
    restore, restore_done, restore_report, _, _, report = events[:6]
    assert restore.request_id is None and restore.record["functionName"] == "orders"  # type: ignore[index]
    assert restore_done.status == "success" and restore_report.metrics == {"durationMs": 181.4}
    assert report.metrics is not None and report.metrics["restoreDurationMs"] == 181.4
    failed_done, failed_report = events[7], events[8]
    assert (failed_done.status, failed_done.error_type) == ("failure", "Runtime.AfterRestoreError")
    assert (failed_report.status, failed_report.error_type) == ("failure", "Runtime.AfterRestoreError")


# --- schema versions ------------------------------------------------------------------------


def test_schema_2022_12_13_json_log_format_records() -> None:
    request_id = "79b4f56e-95b1-4643-9700-2807f4e68189"
    structured = {
        "timestamp": "2024-05-01T10:00:00Z",
        "level": "warning",
        "message": "disk almost full\n",
        "logger": "root",
        "requestId": request_id,
    }
    decoded = decode_one("function", structured)
    assert decoded.record is structured
    assert decoded.message == "disk almost full"
    assert decoded.level == "WARNING"
    assert decoded.request_id == request_id
    assert decoded.to_output() == {
        "time": "2024-05-01T10:00:00.000Z",
        "type": "function",
        "record": structured,
        "requestId": request_id,
        "message": "disk almost full",
    }

    uncaught = decode_one(
        "function",
        {
            "timestamp": "2024-05-01T10:00:00Z",
            "log_level": "ERROR",
            "errorType": "KeyError",
            "errorMessage": "'x'",
        },
    )
    assert uncaught.level == "ERROR"
    assert uncaught.error_type == "KeyError"
    assert uncaught.message is None

    # A stdout line that was already JSON arrives pre-parsed and has no "message".
    preparsed = decode_one("extension", {"orderId": 7, "level": 30})
    assert preparsed.message is None and preparsed.level is None
    assert "message" not in preparsed.to_output()


def test_awslambdaric_text_format_gives_level_and_request_id() -> None:
    line = "[WARNING]\t2024-05-01T10:00:00.123Z\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\tslow call\n"
    decoded = decode_one("function", line)
    assert decoded.level == "WARNING"
    assert decoded.request_id == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert decoded.message == line[:-1]
    assert decoded.record == line

    outside_invoke = decode_one("function", "[INFO]\t2024-05-01T10:00:00.123Z\t\tcold start\n")
    assert outside_invoke.level == "INFO" and outside_invoke.request_id is None

    crash = decode_one("function", "[ERROR] Runtime.ImportModuleError: No module named 'app'\rTraceback ...")
    assert crash.level == "ERROR" and crash.request_id is None

    assert decode_one("function", "[INFO]x not a level").level is None
    assert decode_one("function", "plain print output").level is None
    # Platform string records are not log lines: no level parsing.
    assert decode_one("platform.fault", "[ERROR]\ta\tb\tc").level is None


def test_schema_2025_01_29_and_newer_fields_are_kept() -> None:
    request_id = "c0ffee00-0000-4000-8000-000000000001"
    batch = decode_events(
        [
            event(
                "platform.initStart",
                {
                    "initializationType": "lambda-managed-instances",
                    "phase": "init",
                    "runtimeVersion": "python:3.13.v21",
                    "functionName": "f",
                    "functionVersion": "$LATEST",
                    "instanceId": "2025/01/07/worker10[$LATEST]002cf",
                    "instanceMaxMemory": 268435456,
                },
            ),
            event(
                "platform.start",
                {"requestId": request_id, "functionArn": "arn:aws:lambda:::f", "tenantId": "t1"},
            ),
            event(
                "platform.runtimeDone",
                {
                    "requestId": request_id,
                    "status": "timeout",
                    "errorType": "Sandbox.Timedout",
                    "spans": [
                        {"name": "runtimeOverhead", "start": "2025-02-01T00:00:00.000Z", "durationMs": 1}
                    ],
                },
            ),
            event(
                "platform.report",
                {"requestId": request_id, "status": "timeout", "metrics": {"durationMs": 3000.1}},
            ),
            event("platform.restoreStart", {"runtimeVersion": "python:3.12.v9", "functionName": "f"}),
            event("platform.restoreRuntimeDone", {"status": "failure", "errorType": "Runtime.RestoreError"}),
            event("platform.restoreReport", {"status": "success", "metrics": {"durationMs": 12.5}}),
        ]
    )
    assert batch.malformed == []
    init, start, done, report, restore, restore_done, restore_report = batch.events
    assert init.record["instanceMaxMemory"] == 268435456  # type: ignore[index]
    assert start.request_id == request_id and start.record["tenantId"] == "t1"  # type: ignore[index]
    assert (done.status, done.error_type) == ("timeout", "Sandbox.Timedout")
    assert report.metrics == {"durationMs": 3000.1}
    assert restore.type == "platform.restoreStart" and restore.request_id is None
    assert (restore_done.status, restore_done.error_type) == ("failure", "Runtime.RestoreError")
    assert restore_report.metrics == {"durationMs": 12.5}


def test_unknown_types_and_fields_are_kept() -> None:
    entry = {
        "time": "2030-01-01T00:00:00.000Z",
        "type": "platform.quantumEntanglement",
        "record": {"requestId": "r1", "novel": [1, 2]},
        "sequence": 12,
    }
    [decoded] = decode_events([entry]).events
    assert decoded.type == "platform.quantumEntanglement"
    assert decoded.record == {"requestId": "r1", "novel": [1, 2]}
    assert decoded.request_id == "r1"
    assert decoded.extra_fields == {"sequence": 12}
    assert decode_one("platform.start", {}).extra_fields == {}

    for record in (None, 42, [1, 2], True, {"metrics": "not an object", "requestId": 5}):
        odd = decode_one("somethingElse", record)
        assert odd.record == record
        assert odd.metrics is None and odd.request_id is None and odd.message is None
        assert odd.status is None and odd.error_type is None


# --- batches --------------------------------------------------------------------------------


def test_mixed_batch_keeps_good_events_and_reports_malformed_ones() -> None:
    items: list[object] = [
        event("platform.start", {"requestId": "a"}),
        42,
        {"time": "2024-05-01T10:00:00.000Z", "type": "function"},
        event("function", None),
        "platform.report",
        {"record": {}},
        {"time": 1714557600000, "type": "function", "record": "x"},
        {"time": "2024-05-01T10:00:00.000Z", "type": None, "record": "x"},
        [event("function", "nested")],
        event("platform.report", {"requestId": "a", "status": "success"}),
    ]
    batch = decode_events(items)
    assert [(e.type, e.record) for e in batch.events] == [
        ("platform.start", {"requestId": "a"}),
        ("function", None),  # a null record is not malformed
        ("platform.report", {"requestId": "a", "status": "success"}),
    ]
    assert batch.malformed == [
        MalformedEntry(1, "expected a JSON object, got number"),
        MalformedEntry(2, "missing 'record'"),
        MalformedEntry(4, "expected a JSON object, got string"),
        MalformedEntry(5, "missing 'time', 'type'"),
        MalformedEntry(6, "expected 'time' to be a string, got number"),
        MalformedEntry(7, "expected 'type' to be a string, got null"),
        MalformedEntry(8, "expected a JSON object, got array"),
    ]


def test_decode_batch_accepts_bytes_str_and_bom() -> None:
    payload = json.dumps([event("function", "héllo\n")])
    for body in (payload, payload.encode(), "\ufeff" + payload, b"\xef\xbb\xbf" + payload.encode()):
        batch = decode_batch(body)
        assert [e.message for e in batch.events] == ["héllo"]
    assert decode_batch(b"[]").events == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b'[{"time": ', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"time": "t", "type": "function", "record": "x"}', "is a JSON object, expected an array"),
        (b'"OK"', "is a JSON string, expected an array"),
        (b"null", "is a JSON null, expected an array"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_batches_raise_with_a_clear_message(body: bytes, message: str) -> None:
    with pytest.raises(UnreadableBatch, match=message) as raised:
        decode_batch(body)
    assert isinstance(raised.value, ValueError)


def test_to_output_adds_normalised_fields_only_where_present() -> None:
    assert decode_one("platform.initStart", {"initializationType": "on-demand"}).to_output() == {
        "time": "2024-05-01T10:00:00.000Z",
        "type": "platform.initStart",
        "record": {"initializationType": "on-demand"},
    }
    report = {"requestId": "r", "metrics": {"durationMs": 1.5}}
    assert decode_one("platform.report", report).to_output() == {
        "time": "2024-05-01T10:00:00.000Z",
        "type": "platform.report",
        "record": report,
        "requestId": "r",
        "metrics": {"durationMs": 1.5},
    }


# --- timestamps -----------------------------------------------------------------------------

BASE_MS = utc_ms(2022, 8, 2, 12, 1, 23)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-08-02T12:01:23.521Z", BASE_MS + 521),
        ("2022-08-02T12:01:23:521Z", BASE_MS + 521),  # the AWS docs' own example
        ("2022-08-02T12:01:23Z", BASE_MS),
        ("2022-08-02T12:01:23.5Z", BASE_MS + 500),
        ("2022-08-02T12:01:23.521000Z", BASE_MS + 521),
        ("2022-08-02T12:01:23.521250Z", BASE_MS + 521.25),
        ("2022-08-02T12:01:23.521250999Z", BASE_MS + 521.250999),
        ("2022-08-02T12:01:23,521Z", BASE_MS + 521),
        ("2022-08-02T12:01:23.521+00:00", BASE_MS + 521),
        ("2022-08-02T14:01:23.521+02:00", BASE_MS + 521),
        ("2022-08-02T07:31:23.521-0430", BASE_MS + 521),
        ("2022-08-02T13:01:23+01", BASE_MS),
        ("2022-08-02 12:01:23.521", BASE_MS + 521),
        ("2022-08-02t12:01:23.521z", BASE_MS + 521),
        ("2022-08-02T12:01Z", BASE_MS - 23_000),
        (" 2022-08-02T12:01:23.521Z\n", BASE_MS + 521),
        ("1970-01-01T00:00:00.000Z", 0.0),
        ("1969-12-31T23:59:59.000Z", -1000.0),
        ("2024-02-29T00:00:00Z", utc_ms(2024, 2, 29)),
        ("2000-02-29T00:00:00Z", utc_ms(2000, 2, 29)),
        ("2016-12-31T23:59:60Z", utc_ms(2017, 1, 1)),  # leap second
    ],
)
def test_lenient_timestamps(text: str, expected: float) -> None:
    assert parse_time_ms(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2022-08-02",
        "2022-13-02T12:01:23Z",
        "2022-00-02T12:01:23Z",
        "2023-02-29T12:01:23Z",
        "1900-02-29T12:01:23Z",
        "2022-04-31T12:01:23Z",
        "2022-08-02T24:00:00Z",
        "2022-08-02T12:60:00Z",
        "2022-08-02T12:01:61Z",
        "2022-08-02T12:01:23.Z",
        "2022-08-02T12:01:23+25:00",
        "2022-08-02T12:01:23Zjunk",
        "٢٠٢٢-08-02T12:01:23Z",
        "٢٠٢٢-08-02T12:01:23.521Z",  # canonical length: exercises the fast path's digit check
        "2022-13-02T12:01:23.521Z",
        "2022-08-02T12:01:23.5a1Z",
        "2022-08-02T12:01:23.521+",
        1660000000000,
        None,
    ],
)
def test_unparsable_timestamps_give_none(text: object) -> None:
    assert parse_time_ms(text) is None


def test_unparsable_event_time_is_kept_with_none_epoch() -> None:
    decoded = decode_one("function", "x", time_="sometime")
    assert decoded.time == "sometime"
    assert decoded.epoch_ms is None


def test_repeated_times_in_a_batch_are_all_parsed() -> None:
    times = ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.000Z", "bad", "bad", "2024-05-01T10:00:00.001Z"]
    batch = decode_events([event("function", "x", t) for t in times])
    start = utc_ms(2024, 5, 1, 10)
    assert [e.epoch_ms for e in batch.events] == [start, start, None, None, start + 1]


# --- own diagnostics ------------------------------------------------------------------------

OWN_EMF = {
    "_aws": {
        "Timestamp": 1714557600000,
        "CloudWatchMetrics": [{"Namespace": "LambdaWrapper", "Dimensions": [[]], "Metrics": [{"Name": "x"}]}],
    },
    "x": 1,
}
USER_EMF = {
    "_aws": {
        "Timestamp": 1,
        "CloudWatchMetrics": [{"Namespace": "Orders", "Dimensions": [[]], "Metrics": []}],
    },
    "y": 2,
}


OWN_RECORDS: list[tuple[str, object]] = [
    ("function", '{"logger": "lambda_wrapper", "event": "flush failed"}\n'),
    ("function", '{"logger":"lambda_wrapper","event":"flush failed"}'),
    ("function", '{"logger": "lambda_wrapper.extension", "event": "x"}\n'),
    ("function", '{"event": "x", "logger": "lambda_wrapper"}\n'),  # key order does not matter
    ("function", {"logger": "lambda_wrapper", "event": "x", "level": "warning"}),
    ("extension", {"logger": "lambda_wrapper.pipeline"}),
    ("function", json.dumps(OWN_EMF) + "\n"),
    ("function", OWN_EMF),
    ("function", ' \t{"logger": "lambda_wrapper", "event": "indented"}\n'),  # leading blanks
    ("function", "\n" + json.dumps(OWN_EMF)),
]
OTHER_RECORDS: list[tuple[str, object]] = [
    ("function", "hello"),
    ("function", '{"logger": "lambda_wrapper_fork", "event": "x"}'),
    ("function", '{"logger": "app", "msg": "lambda_wrapper is great"}'),
    ("function", '[INFO]\t2024-05-01T10:00:00.000Z\tr\tmentions lambda_wrapper and "_aws"'),
    ("function", '{"logger": "lambda_wrapper", broken json'[1:]),
    ("function", {"logger": "app", "message": "hi"}),
    ("function", {"_aws": "not an object"}),
    ("function", None),
    ("function", ["_aws"]),
    ("platform.start", {"logger": "lambda_wrapper"}),
    ("platform.fault", '{"logger": "lambda_wrapper"}'),
]


@pytest.mark.parametrize(("type_", "record"), OWN_RECORDS)
def test_own_diagnostics_are_recognised(type_: str, record: object) -> None:
    assert is_own_diagnostic(decode_one(type_, record))


@pytest.mark.parametrize(("type_", "record"), OTHER_RECORDS)
def test_other_records_are_not_own_diagnostics(type_: str, record: object) -> None:
    assert not is_own_diagnostic(decode_one(type_, record))


def test_emf_namespaces_restrict_which_emf_lines_are_ours() -> None:
    own, user = decode_one("function", OWN_EMF), decode_one("function", json.dumps(USER_EMF))
    assert is_own_diagnostic(user)  # without namespaces any EMF line counts as ours
    assert is_own_diagnostic(own, emf_namespaces={"LambdaWrapper"})
    assert not is_own_diagnostic(user, emf_namespaces={"LambdaWrapper"})
    weird = decode_one("function", {"_aws": {"CloudWatchMetrics": [{"Namespace": ["LambdaWrapper"]}, 3]}})
    assert not is_own_diagnostic(weird, emf_namespaces={"LambdaWrapper"})
    # Diagnostics stay ours whatever the namespaces.
    assert is_own_diagnostic(decode_one("function", {"logger": "lambda_wrapper"}), emf_namespaces=())


@pytest.mark.parametrize("emf_namespaces", [None, {"LambdaWrapper"}, set()])
def test_decoding_skips_exactly_the_own_diagnostics(emf_namespaces: set[str] | None) -> None:
    """``decode_events`` settles most records before ``is_own_diagnostic``: what it skips
    is still exactly what that says is ours."""
    records = [*OWN_RECORDS, *OTHER_RECORDS, ("function", USER_EMF), ("function", json.dumps(USER_EMF)),
               ("extension", OWN_EMF), ("function", {"logger": 5}),
               ("function", {"logger": None, "_aws": {}}), ("function", {"logger": "lambda_wrapper_fork"}),
               ("function", {"logger": ["lambda_wrapper"]}), ("platform.report", OWN_EMF), ("function", "")]
    items: list[object] = [event(type_, record) for type_, record in records]
    everything = decode_events(items).events
    kept = decode_events(items, skip_own=True, emf_namespaces=emf_namespaces)
    expected = [e.record for e in everything if not is_own_diagnostic(e, emf_namespaces)]
    assert [e.record for e in kept.events] == expected
    assert kept.own == len(items) - len(expected) > 0


# --- cost -----------------------------------------------------------------------------------


def test_ten_thousand_event_batch_decodes_quickly() -> None:
    items = []
    for n in range(2_500):
        request_id = f"00000000-0000-4000-8000-{n:012d}"
        items += [
            event(
                "platform.start",
                {"requestId": request_id, "version": "$LATEST"},
                f"2024-05-01T10:00:{n % 60:02d}.000Z",
            ),
            event("function", f"[INFO]\t2024-05-01T10:00:00.000Z\t{request_id}\tline {n}\n"),
            event(
                "function",
                {
                    "timestamp": "2024-05-01T10:00:00Z",
                    "level": "INFO",
                    "message": "m",
                    "requestId": request_id,
                },
            ),
            event(
                "platform.report",
                {"requestId": request_id, "status": "success", "metrics": {"durationMs": 1.0}},
            ),
        ]
    body = json.dumps(items).encode()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        batch = decode_batch(body)
        best = min(best, time.perf_counter() - started)
    assert len(batch.events) == 10_000 and batch.malformed == []
    # About 25 ms on a laptop; the bound only catches an accidental quadratic or heavy path.
    assert best < 0.5


def test_decoding_modules_stay_off_heavy_imports() -> None:
    probe = (
        "import sys; before = set(sys.modules); "
        "import lambda_wrapper.telemetry, lambda_wrapper_dev.telemetry_decode; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    heavy = {"typing", "dataclasses", "datetime", "calendar", "http", "email", "urllib", "ssl", "asyncio"}
    assert "lambda_wrapper.telemetry" in loaded
    assert {name for name in loaded if name.split(".")[0] in heavy} == set()


# --- the decode command ---------------------------------------------------------------------


def test_decode_files_prints_one_line_per_event_for_every_fixture_with_events() -> None:
    paths = [*telemetry_files(), API_EXCHANGES]
    status, lines, err = run_decode_files(*paths)
    expected = [entry for path in telemetry_files() for entry in raw_events(path)]
    assert len(lines) == len(expected) > 100
    assert [line["type"] for line in lines] == [entry["type"] for entry in expected]
    assert [line["record"] for line in lines] == [entry["record"] for entry in expected]
    # The API-exchanges file holds requests and responses, not events: named, and exit 1.
    assert status == 1
    [problem] = err.splitlines()
    assert "captured-api-exchanges.json: holds no telemetry events" in problem


def test_decode_files_output_lines_carry_the_normalised_fields(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text(
        json.dumps(
            [
                event("platform.start", {"requestId": "r1"}),
                event("function", "[INFO]\t2024-05-01T10:00:00.000Z\tr1\tdone ✓\n"),
                event("platform.report", {"requestId": "r1", "metrics": {"durationMs": 2.0}}),
            ]
        ),
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    assert decode_files([str(path)], out, err) == 0
    assert err.getvalue() == ""
    raw_lines = out.getvalue().splitlines()
    assert raw_lines[0] == (
        '{"time":"2024-05-01T10:00:00.000Z","type":"platform.start","record":{"requestId":"r1"},"requestId":"r1"}'
    )
    assert json.loads(raw_lines[1]) == {
        "time": "2024-05-01T10:00:00.000Z",
        "type": "function",
        "record": "[INFO]\t2024-05-01T10:00:00.000Z\tr1\tdone ✓\n",
        "requestId": "r1",
        "message": "[INFO]\t2024-05-01T10:00:00.000Z\tr1\tdone ✓",
    }
    assert json.loads(raw_lines[2])["metrics"] == {"durationMs": 2.0}


def test_decode_files_reports_malformed_entries_and_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(
        json.dumps([event("function", "a"), 7, {"time": "t", "type": "function"}, event("function", "b")])
    )
    status, lines, err = run_decode_files(path)
    assert status == 0
    assert [line["record"] for line in lines] == ["a", "b"]
    prefix = f"lambda-wrapper telemetry decode: {path}"
    assert err.splitlines() == [
        f"{prefix}: entry 1: skipped malformed entry: expected a JSON object, got number",
        f"{prefix}: entry 2: skipped malformed entry: missing 'record'",
    ]


def test_decode_files_unreadable_inputs_are_named_and_others_still_decode(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    not_json = tmp_path / "not-json.json"
    not_json.write_text("{oops")
    scalar = tmp_path / "scalar.json"
    scalar.write_text('"OK"')
    good = tmp_path / "good.json"
    good.write_text(json.dumps([event("function", "still printed")]))

    status, lines, err = run_decode_files(missing, not_json, good, scalar, tmp_path)
    assert status == 1
    assert [line["record"] for line in lines] == ["still printed"]
    problems = err.splitlines()
    assert len(problems) == 4
    assert problems[0].startswith(f"lambda-wrapper telemetry decode: {missing}: cannot read: No such file")
    assert problems[1].startswith(f"lambda-wrapper telemetry decode: {not_json}: not valid JSON: ")
    assert problems[2] == (
        f"lambda-wrapper telemetry decode: {scalar}: holds no telemetry events "
        '(expected a JSON array of {"time", "type", "record"} objects, got a JSON string)'
    )
    assert problems[3].startswith(f"lambda-wrapper telemetry decode: {tmp_path}: cannot read: ")


def test_decode_files_without_files_is_a_usage_error() -> None:
    status, lines, err = run_decode_files()
    assert (status, lines) == (2, [])
    assert "no FILE given" in err


def test_decode_files_reads_collections_of_examples(tmp_path: Path) -> None:
    path = tmp_path / "examples.json"
    document = {
        "_note": "examples",
        "single": event("platform.initStart", {"initializationType": "on-demand"}),
        "batch": [event("function", "one"), "junk", event("function", "two")],
        "byVersion": {
            "2022-12-13": [event("function", {"message": "three"})],
            "2025-01-29": event("platform.report", {"requestId": "r"}),
            "deeper": {"ignored": [event("function", "too deep")]},
        },
        "exchanges": [{"request": {"type": "X-Amzn-Trace-Id", "value": "v"}}],
        "numbers": [1, 2, 3],
    }
    path.write_text(json.dumps(document))
    status, lines, err = run_decode_files(path)
    assert status == 0
    assert [line.get("message", line["type"]) for line in lines] == [
        "platform.initStart",
        "one",
        "two",
        "three",
        "platform.report",
    ]
    assert err.splitlines() == [
        f"lambda-wrapper telemetry decode: {path}: batch: entry 1: skipped malformed entry: "
        "expected a JSON object, got string"
    ]


def test_decode_files_reads_a_single_event_file(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(
        json.dumps(event("platform.fault", "RequestId: r Process exited before completing request"))
    )
    status, lines, _ = run_decode_files(path)
    assert status == 0
    assert [line["type"] for line in lines] == ["platform.fault"]


def test_module_entry_point_runs_the_command(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([event("function", "via -m")]))
    result = subprocess.run(
        [sys.executable, "-m", "lambda_wrapper_dev.telemetry_decode", str(path), str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == ["via -m"]
    assert "nope.json: cannot read" in result.stderr


def _fields(event: TelemetryEvent) -> dict[str, object]:
    return {field: getattr(event, field) for field in [*TelemetryEvent.__slots__, "message"]}


@pytest.mark.parametrize("path", telemetry_files(), ids=lambda path: path.name)
def test_the_platform_decoder_makes_the_full_decoders_events_and_only_counts_log_lines(path: Path) -> None:
    """The pipeline's decoder where no exporter reads log lines is the full decoder with
    the log types unread, on every fixture batch."""
    for body in batch_bodies(path):
        items = parse_batch(body)
        full = decode_events(items, unread_types=LOG_TYPES, skip_own=True)
        platform = decode_platform_events(items)
        assert [_fields(event) for event in platform.events] == [_fields(event) for event in full.events]
        assert (platform.malformed, platform.unread, platform.own) == (full.malformed, full.unread, 0)


@settings(max_examples=300)
@given(kind=st.sampled_from(["function", "extension", "platform.report", "platform.fault", "x"]),
       record=st.one_of(st.none(), st.text(), st.integers(), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.sampled_from(["requestId", "metrics", "message", "level"]),
                                        st.one_of(st.text(), st.integers(), st.dictionaries(
                                            st.text(max_size=3), st.integers(), max_size=2)), max_size=3)),
       time=st.sampled_from(["2026-05-01T10:00:00.000Z", "bad", 3]))
def test_the_platform_decoder_agrees_with_the_full_decoder_on_any_entry(kind: str, record: object,
                                                                       time: object) -> None:
    items: list[object] = [{"time": time, "type": kind, "record": record}, [kind], {"time": time}]
    full = decode_events(items, unread_types=LOG_TYPES, skip_own=True)
    platform = decode_platform_events(items)
    assert [_fields(event) for event in platform.events] == [_fields(event) for event in full.events]
    assert (platform.malformed, platform.unread, platform.own) == (full.malformed, full.unread, 0)


def _build_event(
    time: str, type_: str, record: object, epoch_ms: float | None, envelope: dict[str, object]
) -> TelemetryEvent:
    """The event the decoder must make of an entry, its rules applied one by one: what the
    decoder's inline paths are held to."""
    if type_ not in LOG_TYPES:
        return platform_event(time, type_, record, epoch_ms, envelope)
    request_id = level = None
    message: object = None
    metrics = None
    if isinstance(record, dict):
        value = record.get("requestId")
        if isinstance(value, str):
            request_id = value
        value = record.get("metrics")
        if isinstance(value, dict):
            metrics = value
        value = record.get("message")
        if isinstance(value, str):
            message = value[:-1] if value.endswith("\n") else value
        value = record.get("level") or record.get("log_level")
        if isinstance(value, str):
            level = value.upper()
    elif isinstance(record, str):
        message = ...  # the record less one final newline, made when read
        if record.startswith("["):
            level, request_id = _text_log_prefix(record)
    return TelemetryEvent(time, type_, record, epoch_ms, request_id, message,  # type: ignore[arg-type]
                          metrics, level, envelope)


@settings(max_examples=300)
@given(kind=st.sampled_from(["function", "extension"]),
       line=st.one_of(st.text(), st.builds(lambda level, rest: f"[{level}]\t2026-01-01T00:00:00.000Z\t{rest}",
                                           st.sampled_from(["INFO", "ERROR", "X"]), st.text())))
def test_a_text_line_is_the_event_the_generic_builder_makes(kind: str, line: str) -> None:
    item: dict[str, object] = {"time": "2026-05-01T10:00:00.000Z", "type": kind, "record": line}
    (event,) = decode_events([item]).events
    generic = _build_event("2026-05-01T10:00:00.000Z", kind, line, parse_time_ms(item["time"]), item)
    fields = [*TelemetryEvent.__slots__, "message"]  # the message is made from a slot when read
    assert {field: getattr(event, field) for field in fields} == {
        field: getattr(generic, field) for field in fields}


_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text())
_JSON_VALUES = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)
_OWN_LOGGERS = st.sampled_from(
    ["lambda_wrapper", "lambda_wrapper.export", "lambda_wrapper_x", "root", "é\"\\n"])
_EMF = st.fixed_dictionaries({"CloudWatchMetrics": st.lists(st.fixed_dictionaries(
    {"Namespace": st.sampled_from(["LambdaWrapper", "Mine"])}), max_size=2)})
_OBJECT_RECORDS = st.dictionaries(
    st.sampled_from(["message", "level", "log_level", "requestId", "logger", "metrics", "_aws", "extra"]),
    st.one_of(_JSON_VALUES, _OWN_LOGGERS, _EMF,
              st.sampled_from(["line\n", "ünï\tcodé\n\n", "", "info", "Error"]),
              st.dictionaries(st.sampled_from(["durationMs", "x"]), st.integers(), max_size=2)))


@settings(max_examples=400)
@given(kind=st.sampled_from(["function", "extension", "platform.report", "platform.start"]),
       record=_OBJECT_RECORDS, namespaces=st.sampled_from([None, set(), {"LambdaWrapper"}]))
def test_an_object_record_is_the_event_the_generic_builder_makes(
    kind: str, record: dict[str, object], namespaces: set[str] | None
) -> None:
    item: dict[str, object] = {"time": "2026-05-01T10:00:00.000Z", "type": kind, "record": record}
    generic = _build_event("2026-05-01T10:00:00.000Z", kind, record, parse_time_ms(item["time"]), item)
    decoded = decode_events([item], skip_own=True, emf_namespaces=namespaces)
    if is_own_diagnostic(generic, namespaces):
        assert (decoded.events, decoded.own) == ([], 1)
        return
    (event,) = decode_events([item]).events
    assert decoded.own == 0 and len(decoded.events) == 1
    fields = [*TelemetryEvent.__slots__, "message"]
    for made in (event, decoded.events[0]):
        assert {field: getattr(made, field) for field in fields} == {
            field: getattr(generic, field) for field in fields}
