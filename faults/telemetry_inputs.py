"""Telemetry API bodies for fuzzing: well-formed seeds and a hypothesis strategy.

From random bytes alone a fuzzer seldom gets past the JSON parser. atheris starts
from the seed batches and mutates its way into every record type the decoder and
the exporters branch on; hypothesis generates batches whose envelopes are right and
whose records are any JSON at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

REQUEST_ID = "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"
WHEN = "2024-05-01T10:00:00.123Z"
XRAY = {
    "type": "X-Amzn-Trace-Id",
    "value": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=53995c3f42cd8ad8;Sampled=1",
}
REPORT_METRICS = {
    "durationMs": 12.5,
    "billedDurationMs": 13,
    "memorySizeMB": 128,
    "maxMemoryUsedMB": 40,
    "initDurationMs": 180.2,
}


def _event(kind: str, record: object, when: str = WHEN) -> dict[str, object]:
    return {"time": when, "type": kind, "record": record}


SEED_BATCHES: list[list[dict[str, object]]] = [
    [
        _event(
            "platform.initStart",
            {"initializationType": "on-demand", "phase": "init", "runtimeVersion": "python:3.12"},
        ),
        _event(
            "platform.initRuntimeDone",
            {"initializationType": "on-demand", "phase": "init", "status": "success"},
        ),
        _event(
            "platform.initReport",
            {"initializationType": "on-demand", "phase": "init", "metrics": {"durationMs": 180.2}},
        ),
    ],
    [
        _event("platform.start", {"requestId": REQUEST_ID, "version": "$LATEST", "tracing": XRAY}),
        _event("function", "[INFO]\t2024-05-01T10:00:00.130Z\t" + REQUEST_ID + "\thello\n"),
        _event("function", {"timestamp": WHEN, "level": "ERROR", "requestId": REQUEST_ID, "message": "boom"}),
        _event("extension", "extension says hi\n"),
        _event(
            "platform.runtimeDone",
            {
                "requestId": REQUEST_ID,
                "status": "error",
                "errorType": "Runtime.ExitError",
                "metrics": {"durationMs": 12.0, "producedBytes": 42},
                "spans": [{"name": "responseLatency", "start": WHEN, "durationMs": 11.0}],
                "tracing": XRAY,
            },
        ),
        _event(
            "platform.report",
            {"requestId": REQUEST_ID, "status": "success", "metrics": REPORT_METRICS, "tracing": XRAY},
        ),
    ],
    [
        _event(
            "platform.logsDropped",
            {"reason": "Consumer seems to have fallen behind", "droppedRecords": 3, "droppedBytes": 512},
        ),
        _event(
            "platform.extension",
            {"name": "lambda-wrapper", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]},
        ),
        _event(
            "platform.telemetrySubscription",
            {"name": "lambda-wrapper", "state": "Subscribed", "types": ["platform"]},
        ),
        _event("platform.fault", "RequestId: " + REQUEST_ID + " Process exited before completing request"),
    ],
    [
        _event(
            "function",
            json.dumps(
                {
                    "logger": "lambda_wrapper",
                    "event": "lambda_wrapper.invocation",
                    "requestId": REQUEST_ID,
                    "coldStart": True,
                    "wrapperOverheadMs": 0.4,
                    "process": {"rssMB": 41.5, "threads": 3},
                }
            ),
        ),
        _event(
            "function", json.dumps({"_aws": {"CloudWatchMetrics": [{"Namespace": "Shop", "Metrics": []}]}})
        ),
    ],
]


def write_corpus(directory: Path) -> Path:
    """Write one file per seed batch (and one per event) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    number = 0
    for batch in SEED_BATCHES:
        for body in [batch, *([event] for event in batch)]:
            (directory / f"seed-{number:03d}.json").write_text(json.dumps(body))
            number += 1
    return directory


def telemetry_bodies(max_events: int = 20) -> st.SearchStrategy[bytes]:
    """Random bytes, near-JSON (Python reprs), and JSON arrays of envelopes with any records."""
    json_like = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda children: (
            st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
        ),
        max_leaves=40,
    )
    record_fields = st.dictionaries(
        st.sampled_from(
            ["requestId", "status", "errorType", "metrics", "tracing", "spans", "level", "message"]
        ),
        json_like,
    )
    envelope = st.fixed_dictionaries(
        {
            "time": st.sampled_from([WHEN, "", "not a time"]) | st.text(max_size=30),
            "type": st.sampled_from(
                ["function", "extension", "platform.start", "platform.runtimeDone", "platform.report", ""]
            ),
        },
        optional={"record": json_like | record_fields},
    )
    return st.one_of(
        st.binary(max_size=4096),
        st.lists(envelope, max_size=max_events).map(lambda items: repr(items).encode()),
        st.lists(envelope, max_size=max_events).map(lambda items: json.dumps(items).encode()),
    )
