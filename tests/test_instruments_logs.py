"""Structured logs: the function's stdlib logging as one JSON object per line, with invocation context."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog

from function_runs import parse_json_object, run_function
from lambda_wrapper.instruments import CURRENT, logs, xray_root

TRACE_HEADER = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
LOGGING_FUNCTION = {
    "app.py": """
        import logging
        from lambda_wrapper.logger import get_logger

        logging.getLogger("app.init").warning("imported")
        log = get_logger()  # module level: must still name each invocation
        app = logging.getLogger("app")

        def handler(event, context):
            print("a plain print stays as it is")
            app.debug("too verbose for INFO")
            app.info("order %s placed", 42, extra={"orderId": 42})
            app.warning({"kind": "dict message"})
            log.info("via structlog", user="bob")
            try:
                {}["missing"]
            except KeyError:
                app.exception("lookup failed")
            return {"ok": True}
    """
}


def own_lines(output: list[str]) -> list[dict[str, Any]]:
    """The function's JSON log lines (our diagnostics and EMF lines excluded)."""
    parsed = (parse_json_object(line) for line in output)
    return [
        line
        for line in parsed
        if line is not None and "level" in line and line.get("logger") != "lambda_wrapper"
    ]


def test_xray_root_is_taken_from_the_trace_header() -> None:
    assert xray_root(TRACE_HEADER) == "1-5bef4de7-ad49b0e87f6ef6c87fc2e700"
    assert xray_root("Parent=1") is None and xray_root(None) is None


@pytest.mark.parametrize(("name", "level"), [("INFO", 20), ("trace", 10), ("FATAL", 50), ("nonsense", None)])
def test_lambda_log_level_is_read_like_awslambdaric(name: str, level: int | None) -> None:
    assert logs.lambda_log_level(name) == level


def test_each_invocation_has_its_own_trace_id(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "Root=1-5bef4de7-00000000000000000000000b;Parent=9a9197af755a6419;Sampled=1"
    try:
        for header, root in ((TRACE_HEADER, "1-5bef4de7-ad49b0e87f6ef6c87fc2e700"),
                             (other, "1-5bef4de7-00000000000000000000000b")):
            monkeypatch.setenv("_X_AMZN_TRACE_ID", header)  # as awslambdaric sets it per invoke
            CURRENT.invocation_starts("req", False)
            assert CURRENT.xray_trace_id == root and CURRENT.fields()["xrayTraceId"] == root
        monkeypatch.delenv("_X_AMZN_TRACE_ID")
        CURRENT.invocation_starts("req", False)
        assert CURRENT.xray_trace_id is None and "xrayTraceId" not in CURRENT.fields()
    finally:
        CURRENT.request_id = CURRENT.cold_start = None


def test_formatter_renders_one_flat_json_object() -> None:
    formatter = logs.LambdaJsonFormatter(frame_types={20: b"\xa5\x5a\x00\x0e"})
    record = logging.LogRecord("shop", logging.INFO, __file__, 1, "paid %s", ("EUR",), None)
    record.orderId = 7
    CURRENT.invocation_starts("req-1", True)
    try:
        line = formatter.format(record)
    finally:
        CURRENT.request_id = CURRENT.cold_start = None
    assert line.endswith("\n") and line.count("\n") == 1
    document = json.loads(line)
    assert list(document)[:4] == ["timestamp", "level", "message", "logger"]
    assert document["message"] == "paid EUR" and document["level"] == "INFO"
    assert document["requestId"] == "req-1" and document["coldStart"] is True
    assert document["orderId"] == 7
    assert record._frame_type == b"\xa5\x5a\x00\x0e"  # type: ignore[attr-defined]


def test_outside_awslambdaric_lines_go_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)
    root.handlers = []
    try:
        logs.install(json_format=False, level_name="INFO")
        logging.getLogger("local").info("hello")
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        structlog.reset_defaults()
        logs.installed = False
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "hello"


# -- end to end -------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_function_logging_is_rendered_as_json_with_context(
    layer_dir: Path, tmp_path: Path, log_format: str
) -> None:
    env = {
        "LAMBDA_WRAPPER_LOGS": "structlog",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_LAMBDA_LOG_FORMAT": log_format,
    }
    run = run_function(layer_dir, tmp_path, LOGGING_FUNCTION, env=env, payloads=[b"{}", b"{}"])
    assert [r.status for r in run.results] == ["success", "success"], run.text()
    first, second = (r.request_id for r in run.results)
    assert "a plain print stays as it is" in run.output

    lines = own_lines(run.output)
    by_message = {str(line["message"]): line for line in lines}
    assert "too verbose for INFO" not in by_message  # level from AWS_LAMBDA_LOG_LEVEL
    assert by_message["imported"]["logger"] == "app.init"
    assert "requestId" not in by_message["imported"]  # logged during Init

    invocation_lines = [line for line in lines if line.get("requestId")]
    assert {line["requestId"] for line in invocation_lines} == {first, second}
    for line in invocation_lines:
        assert line["functionName"] == "function" and line["functionVersion"] == "$LATEST"
        assert line["coldStart"] is (line["requestId"] == first)
        assert line["timestamp"].endswith("Z")

    placed = [line for line in invocation_lines if line["message"] == "order 42 placed"]
    assert [line["orderId"] for line in placed] == [42, 42]
    assert {"kind": "dict message"} in [line["message"] for line in invocation_lines]
    structlog_lines = [line for line in invocation_lines if line["message"] == "via structlog"]
    assert [line["requestId"] for line in structlog_lines] == [first, second]  # module-level logger
    assert all(line["user"] == "bob" and line["logger"] == "app" for line in structlog_lines)
    failure = next(line for line in invocation_lines if line["message"] == "lookup failed")
    assert (failure["level"], failure["errorType"]) == ("ERROR", "KeyError")
    assert any("missing" in frame for frame in failure["stackTrace"])

    # What the platform hands to Telemetry API subscribers.
    records = [e["record"] for e in run.events if e["type"] == "function"]
    placed_records = [r for r in records if "order 42 placed" in json.dumps(r)]
    if log_format == "JSON":
        # Our object is the record itself: no JSON string inside a "message".
        assert all(isinstance(r, dict) and r["message"] == "order 42 placed" for r in placed_records)
    else:
        assert all(isinstance(r, str) and json.loads(r)["orderId"] == 42 for r in placed_records)


def test_xray_trace_id_is_in_every_invocation_line(layer_dir: Path, tmp_path: Path) -> None:
    env = {"LAMBDA_WRAPPER_LOGS": "structlog", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    function = {"app.py": "import logging\ndef handler(e, c):\n    logging.getLogger('x').info('traced')\n"}
    run = run_function(layer_dir, tmp_path, function, env=env, trace_id=TRACE_HEADER)
    (line,) = [line for line in own_lines(run.output) if line["message"] == "traced"]
    assert line["xrayTraceId"] == "1-5bef4de7-ad49b0e87f6ef6c87fc2e700"


def test_logs_are_left_alone_by_default(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(layer_dir, tmp_path, LOGGING_FUNCTION, env={"AWS_LAMBDA_LOG_LEVEL": "INFO"})
    assert run.results[0].status == "success", run.text()
    assert any(line.startswith("[INFO]") and "order 42 placed" in line for line in run.output)
    assert not [line for line in own_lines(run.output) if line.get("logger") == "app"]
