"""Log lines in Telemetry API batches (``function`` and ``extension`` records), and the
decoding of batches that carry them.

A log line is a text line (awslambdaric's ``[LEVEL]\t<time>\t<request id>\t<message>``,
or anything the function printed) or an object of the JSON log format. The toolkit's own
lines (its diagnostics, its EMF documents) come back among them and are told apart here,
so that they are not forwarded again.

Loaded where something reads log lines: an exporter subscribed to them (the pipeline
chooses its decoder once, when it is made), the decode CLI. With the defaults nothing
does (EMF reads platform records only): the pipeline decodes with
``telemetry.decode_platform_events`` and Init never loads this module.
"""

from __future__ import annotations

import json

from .telemetry import (
    LOG_TYPES,
    DecodedBatch,
    TelemetryEvent,
    malformed_item,
    parse_batch,
    parse_time_ms,
    platform_event,
)

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Collection
    from types import EllipsisType

    from .malformed import MalformedEntry

__all__ = ["OWN_LOGGER", "decode_batch", "decode_events", "is_own_diagnostic"]

_new_event = object.__new__
# First characters of a text log line that is neither "[LEVEL]"-prefixed nor possibly
# one of our own lines (a JSON object, maybe indented): printable ASCII but "[" and "{"
# (the empty line's "" is found too, and is neither). A string: a set costs its building
# at import, a lookup of one character costs the same.
_PLAIN_FIRST = ("!\"#$%&'()*+,-./0123456789:;<=>?@"
                "ABCDEFGHIJKLMNOPQRSTUVWXYZ\\]^_`abcdefghijklmnopqrstuvwxyz|}~")
OWN_LOGGER = "lambda_wrapper"
_OWN_LOGGER_PREFIXES = ('{"logger": "lambda_wrapper', '{"logger":"lambda_wrapper')


def decode_batch(
    body: bytes | str,
    unread_types: Collection[str] = (),
    skip_own: bool = False,
    emf_namespaces: Collection[str] | None = None,
) -> DecodedBatch:
    """Decode one Telemetry API POST body (a JSON array of events), log lines included.

    Raises ``UnreadableBatch`` when the body is not JSON or not an array
    (``telemetry.parse_batch``); malformed entries inside a valid array are reported in
    ``DecodedBatch.malformed`` instead.
    What is counted rather than built: see ``decode_events``.
    """
    return decode_events(parse_batch(body), unread_types, skip_own, emf_namespaces)


def decode_events(
    items: list[object],
    unread_types: Collection[str] = (),
    skip_own: bool = False,
    emf_namespaces: Collection[str] | None = None,
) -> DecodedBatch:
    """Decode an already parsed batch; entries that are not events become ``MalformedEntry``.

    An entry is malformed when it is not an object, lacks ``time``, ``type`` or
    ``record``, or when ``time`` or ``type`` is not a string (both are strings in every
    schema version; a ``record`` may be anything, including null). A well-formed entry
    whose type is in ``unread_types`` (what no consumer reads) is only counted, in
    ``DecodedBatch.unread``: building events is most of the cost of a log line. With
    ``skip_own``, the toolkit's own lines (``is_own_diagnostic`` with ``emf_namespaces``)
    are only counted too, in ``DecodedBatch.own``.
    """
    events: list[TelemetryEvent] = []
    append = events.append
    malformed: list[MalformedEntry] = []
    unread = own = 0
    # Events of a batch often share a timestamp; reuse the last parse.
    last_time: str | None = None
    last_epoch_ms: float | None = None
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            malformed.append(malformed_item(index, item))
            continue
        try:
            time = item["time"]
            type_ = item["type"]
            record = item["record"]
        except KeyError:
            malformed.append(malformed_item(index, item))
            continue
        if type(time) is not str or type(type_) is not str:
            malformed.append(malformed_item(index, item))
            continue
        if type_ in unread_types:
            unread += 1
            continue
        if time != last_time:
            last_time = time
            last_epoch_ms = parse_time_ms(time)
        # Log lines, the bulk of most batches, are built here: ``TelemetryEvent(...)``
        # without the call (its frame is a third of a line's cost here) and, for a
        # JSON-format line, the generic builder's checks in its order without its calls
        # (tests/test_telemetry_decode.py holds each equal to that builder's event).
        if type(record) is str and type_ in LOG_TYPES:
            first = record[0] if record else ""
            level = request_id = metrics = None
            message: str | EllipsisType | None = ...  # the record less one final newline, made when read
            if first in _PLAIN_FIRST:  # most lines: one lookup settles both tests below
                pass
            elif first == "[":
                level, request_id = _text_log_prefix(record)
            # Both kinds of own line are JSON objects, maybe indented: a printable ASCII
            # first character other than "{" settles it without a call.
            elif skip_own and (first == "{" or first <= " " or (first > "~" and first.isspace())) \
                    and _is_own_text(record, emf_namespaces):
                own += 1
                continue
        elif type(record) is dict and type_ in LOG_TYPES:
            # An object is one of our own lines only with our logger or EMF metadata.
            if skip_own and ("_aws" in record or str(record.get("logger")).startswith(OWN_LOGGER)) \
                    and _is_own_object(record, emf_namespaces):
                own += 1
                continue
            value = record.get("requestId")
            request_id = value if isinstance(value, str) else None
            value = record.get("metrics")
            metrics = value if isinstance(value, dict) else None
            value = record.get("message")
            message = (value[:-1] if value.endswith("\n") else value) if isinstance(value, str) else None
            value = record.get("level") or record.get("log_level")
            level = value.upper() if isinstance(value, str) else None
        else:
            # Not a log line (a log line whose record is neither a string nor an object
            # has nothing to read, and is none of our own lines either).
            append(platform_event(time, type_, record, last_epoch_ms, item))
            continue
        event = _new_event(TelemetryEvent)  # every slot is set
        event.time = time
        event.type = type_
        event.record = record
        event.epoch_ms = last_epoch_ms
        event.request_id = request_id
        event._message = message
        event.metrics = metrics
        event.level = level
        event._envelope = item
        append(event)
    return DecodedBatch(events, malformed, unread, own)


# awslambdaric's text format is "[LEVEL]\t<time>\t<request id>\t<message>\n"; uncaught
# errors print "[ERROR] Type: message". The level must be a known name so that other
# bracketed prefixes ("[my_module.func] started") are not taken for one.
_TEXT_LOG_LEVELS = frozenset(("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL"))


def _text_log_prefix(line: str) -> tuple[str | None, str | None]:
    # Plain string scanning: this runs for many log lines and a regex costs ~0.3 ms to compile.
    end = line.find("]", 1, 10)
    level = line[1:end] if end > 0 else ""
    after = line[end + 1 : end + 2]
    if level not in _TEXT_LOG_LEVELS or (after and not after.isspace()):
        return None, None
    if after != "\t":
        return level, None
    time_end = line.find("\t", end + 2)
    id_end = line.find("\t", time_end + 1) if time_end > 0 else -1
    if id_end < 0 or "\n" in line[end:id_end]:
        return level, None
    return level, line[time_end + 1 : id_end] or None


def is_own_diagnostic(event: TelemetryEvent, emf_namespaces: Collection[str] | None = None) -> bool:
    """Whether a log event is output of this toolkit rather than of the user's function.

    Our stderr diagnostics and our EMF metric lines come back to us as ``function`` (or
    ``extension``) events; forwarding them again would loop. Matches:

    - a diagnostic line: a JSON object whose ``logger`` is ``lambda_wrapper`` or a
      ``lambda_wrapper.*`` child, as a text line or pre-parsed by the JSON log format;
    - a CloudWatch EMF line: an object with an ``_aws`` metadata object. With
      ``emf_namespaces`` given, only EMF lines whose ``CloudWatchMetrics`` use one of
      those namespaces match, so that the user's own EMF metrics are still forwarded.
    """
    if event.type not in LOG_TYPES:
        return False
    record = event.record
    if isinstance(record, str):
        first = record[:1]
        if first != "{" and not first.isspace():
            return False  # both kinds of own line are JSON objects: most lines end here
        return _is_own_text(record, emf_namespaces)
    return _is_own_object(record, emf_namespaces)


def _is_own_text(line: str, emf_namespaces: Collection[str] | None) -> bool:
    for prefix in _OWN_LOGGER_PREFIXES:
        # The fast path for our own lines; "lambda_wrapper_x" falls through to a parse.
        if line.startswith(prefix) and line[len(prefix) : len(prefix) + 1] in ('"', "."):
            return True
    return _is_own_object(_parse_json_object_line(line), emf_namespaces)


def _is_own_object(record: object, emf_namespaces: Collection[str] | None) -> bool:
    if not isinstance(record, dict):
        return False
    logger = record.get("logger")
    if isinstance(logger, str) and (logger == OWN_LOGGER or logger.startswith(OWN_LOGGER + ".")):
        return True
    return _is_emf(record.get("_aws"), emf_namespaces)


def _parse_json_object_line(line: str) -> dict[str, object] | None:
    # Only lines that could match are parsed, so ordinary log lines cost two substring scans.
    if OWN_LOGGER not in line and '"_aws"' not in line:
        return None
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_emf(metadata: object, emf_namespaces: Collection[str] | None) -> bool:
    if not isinstance(metadata, dict):
        return False
    if emf_namespaces is None:
        return True
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        return False
    return any(
        isinstance(directive, dict)
        and isinstance(directive.get("Namespace"), str)
        and directive["Namespace"] in emf_namespaces
        for directive in directives
    )
