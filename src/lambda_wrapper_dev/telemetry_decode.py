"""``lambda-wrapper telemetry decode FILE...``: show captured batches the way the pipeline sees them."""

from __future__ import annotations

import json
import sys

from lambda_wrapper.log_lines import decode_events
from lambda_wrapper.malformed import json_kind

# ``typing`` costs ~15 ms to import; mypy honours a module-level TYPE_CHECKING constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from lambda_wrapper.telemetry import TelemetryEvent

_PROG = "lambda-wrapper telemetry decode"


def decode_files(paths: list[str], out: TextIO, err: TextIO) -> int:
    """Print every event of each FILE as one compact JSON object per line, in order.

    Each line has ``time``, ``type`` and ``record`` as received, plus ``requestId``,
    ``message`` and ``metrics`` where the event has them (see ``TelemetryEvent``).

    What a FILE may hold:

    - a JSON array: one batch, exactly as POSTed by the Telemetry or Logs API;
    - a single event object (``type`` plus ``time`` or ``record``);
    - an object collecting examples, e.g. ``{"initStart": {...event...}, "batch": [...]}``:
      its values, and the values of its object values (one level further), are read in
      order; an array counts as a batch when at least one item looks like an event,
      an object counts when it looks like an event. Other values (notes, request and
      response exchanges, ...) are ignored, so no event is ever made up from them.

    A malformed entry of a batch is reported on ``err`` with its file and position and
    skipped; the rest still print. A file that cannot be read, is not JSON or holds no
    events is reported on ``err`` by name; the other files are still decoded.

    Returns 0 when every file was read, 1 when any file could not be, 2 without files.
    """
    if not paths:
        err.write(f"{_PROG}: no FILE given\n")
        return 2
    status = 0
    for path in paths:
        batches, problem = _read_batches(path)
        if problem is not None:
            err.write(f"{_PROG}: {path}: {problem}\n")
            status = 1
            continue
        for label, items in batches:
            decoded = decode_events(items)
            for entry in decoded.malformed:
                where = f"{label}: entry {entry.index}" if label else f"entry {entry.index}"
                err.write(f"{_PROG}: {path}: {where}: skipped malformed entry: {entry.reason}\n")
            for event in decoded.events:
                _write_event(event, out)
    return status


def _read_batches(path: str) -> tuple[list[tuple[str, list[object]]], str | None]:
    """The batches of events in a file, or why there are none."""
    document, problem = _load(path)
    if problem is not None:
        return [], problem
    batches = _find_batches(document)
    if not batches:
        return [], (
            "holds no telemetry events (expected a JSON array of "
            f'{{"time", "type", "record"}} objects, got a JSON {json_kind(document)})'
        )
    return batches, None


def _load(path: str) -> tuple[object, str | None]:
    try:
        with open(path, "rb") as file:
            body = file.read()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        return json.loads(body), None
    except RecursionError:
        return None, "not readable JSON: nested too deeply"
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"


def _find_batches(document: object) -> list[tuple[str, list[object]]]:
    """The arrays of events in a file, each labelled with its key path ("" for the whole file)."""
    if isinstance(document, list):
        return [("", document)]
    if not isinstance(document, dict):
        return []
    if _looks_like_event(document):
        return [("", [document])]
    batches: list[tuple[str, list[object]]] = []
    for key, value in document.items():
        if isinstance(value, dict) and not _looks_like_event(value):
            for inner_key, inner_value in value.items():
                _collect(f"{key}.{inner_key}", inner_value, batches)
        else:
            _collect(str(key), value, batches)
    return batches


def _collect(label: str, value: object, batches: list[tuple[str, list[object]]]) -> None:
    if isinstance(value, list) and any(_looks_like_event(item) for item in value):
        batches.append((label, value))
    elif isinstance(value, dict) and _looks_like_event(value):
        batches.append((label, [value]))


def _looks_like_event(value: object) -> bool:
    # "type" alone is too common (e.g. tracing {"type": "X-Amzn-Trace-Id"}); requiring a
    # second envelope field still lets an event missing one field be reported as malformed.
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and ("time" in value or "record" in value)
    )


def _write_event(event: TelemetryEvent, out: TextIO) -> None:
    output = event.to_output()
    line = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    try:
        out.write(line + "\n")
    except UnicodeEncodeError:
        # Lone surrogates (valid in JSON escapes) or a narrow terminal encoding.
        out.write(json.dumps(output, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    sys.exit(decode_files(sys.argv[1:], sys.stdout, sys.stderr))
