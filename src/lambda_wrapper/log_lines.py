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
from itertools import repeat

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

__all__ = [
    "OWN_LOGGER",
    "count_function_entries",
    "decode_batch",
    "decode_events",
    "decode_verbatim",
    "entry_time",
    "is_own_diagnostic",
    "split_entries",
    "verbatim_type",
    "without_log_lines",
]

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


# == verbatim entries =======================================================================
# An exporter that writes log lines as the platform sent them (``Exporter.verbatim_log_lines``)
# need not decode them: it takes each entry's bytes out of the batch. Telling entries apart
# without parsing is sound only where the framing proves where each ends, so a batch is
# split only when all of this holds, and is decoded as before otherwise:
#
# - it is compact JSON with the envelope keys first (``[{"time":"``), ends with ``}]``
#   and holds no raw line break (a break inside a string is escaped);
# - no array opens inside it but the batch's own. Entries are then separated by
#   ``},{"time":"`` alone: ``,{`` outside a string occurs only between array elements,
#   and inside a string ``{"`` cannot occur, since a quote there is escaped. Outside a
#   string a ``[`` follows ``:``, ``,`` or ``[`` (whitespace aside), a ``:`` follows a
#   key's closing quote, and a ``,`` follows the end of a value (a quote, ``}``, ``]``,
#   a digit, the ``e`` of true or false, the ``l`` of null). A ``[`` is inside a string,
#   and harmless, where what precedes it shows that; any other sends the batch to the
#   decoder, which is slower, never wrong;
# - it is ASCII, or valid UTF-8.
#
# A record's own content is not checked: a well-framed entry is written as it came.

_FIRST_ENTRY = b'[{"time":"'
_ENTRY_SEPARATOR = b'},{"time":"'
_JSON_WHITESPACE = b" \t\r"
_QUOTE, _BRACKET, _COLON, _COMMA, _BACKSLASH = b'"[:,\\'
_VALUE_ENDS = b'"}]0123456789el'
# An entry as ``split_entries`` gives it: less the ``{"time":"`` it opens with and the
# ``}`` that closes it, which are the same for every entry. Where the platform's
# 24-character time ("2026-05-01T10:00:00.000Z") is followed by the entry's type:
TYPE_OFFSET = 24
ENTRY_OPENING = b'{"time":"'
ENTRY_CLOSING = b"}"
_PLATFORM_TYPE = b'","type":"platform.'
_FUNCTION_ENTRY = b'","type":"function","record":'
_EXTENSION_ENTRY = b'","type":"extension","record":'
# Text that one of our own lines holds (``is_own_diagnostic``): an entry holding it is
# decoded. Every EMF document names ``CloudWatchMetrics`` (ours and the user's alike).
_OWN_MARKS = (OWN_LOGGER.encode(), b"CloudWatchMetrics")


def split_entries(body: bytes) -> list[bytes] | None:
    """Each entry of ``body``, in order, less its ``ENTRY_OPENING`` and its
    ``ENTRY_CLOSING``; None where the framing does not prove where entries end (above)."""
    if not _framed(body):
        return None
    return body[len(_FIRST_ENTRY):-2].split(_ENTRY_SEPARATOR)


def without_log_lines(body: bytes) -> bytes | None:
    """``body`` with its ``platform.*`` entries only, for an exporter that reads no log
    line to keep; None where it should be kept whole: the framing does not prove where
    entries end, or it holds nothing else.

    Found without splitting the body: an entry's own type key is the one right after its
    time (which holds no quote), so a ``platform.`` type anywhere else sends the body
    back whole."""
    if not _framed(body):
        return None
    kept: list[bytes] = []
    opening = len(ENTRY_OPENING)
    at = body.find(_PLATFORM_TYPE)
    while at >= 0:
        start = body.rfind(ENTRY_OPENING, 0, at)
        if start < 0 or body.find(b'"', start + opening) != at:
            return None
        end = body.find(_ENTRY_SEPARATOR, at)
        if end < 0:
            end = len(body) - 2  # the last entry's closing brace
        kept.append(body[start + opening:end])
        at = body.find(_PLATFORM_TYPE, end)
    if not kept:
        return b"[]"
    reduced = _FIRST_ENTRY + _ENTRY_SEPARATOR.join(kept) + b"}]"
    return None if len(reduced) == len(body) else reduced


def _framed(body: bytes) -> bool:
    """Whether ``body``'s framing proves where its entries end (the rules above)."""
    if not body.startswith(_FIRST_ENTRY) or not body.endswith(b"}]") or b"\n" in body:
        return False
    # A "[" right after a quote is text: a string's first character. Only others are looked at.
    if body.count(b"[") - 1 > body.count(b'"['):
        at = body.find(b"[", 1)
        while at > 0:
            if body[at - 1] != _QUOTE and _opens_array(body, at):
                return False
            at = body.find(b"[", at + 1)
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _opens_array(body: bytes, at: int) -> bool:
    """Whether the ``[`` at ``at`` may open an array; False only where it is inside a
    string. Each ``[`` before it was found inside a string."""
    before = _previous(body, at)
    mark = body[before]
    if mark == _BRACKET:
        return False  # next to a "[" inside a string: in the same string
    if mark == _COLON:
        key_end = _previous(body, before)
        return body[key_end] == _QUOTE and not _escaped(body, key_end)
    if mark == _COMMA:
        value_end = _previous(body, before)
        end = body[value_end]
        return end in _VALUE_ENDS and not (end == _QUOTE and _escaped(body, value_end))
    return False


def _previous(body: bytes, at: int) -> int:
    """The position of the last character before ``at`` that is not JSON whitespace."""
    at -= 1
    while body[at] in _JSON_WHITESPACE:
        at -= 1
    return at


def _escaped(body: bytes, at: int) -> bool:
    """Whether the character at ``at`` follows an odd run of backslashes."""
    start = at
    while body[at - 1] == _BACKSLASH:
        at -= 1
    return (start - at) % 2 == 1


def decode_verbatim(
    body: bytes,
    unread_types: Collection[str] = (),
    emf_namespaces: Collection[str] | None = None,
) -> DecodedBatch | None:
    """``decode_batch(body, unread_types, skip_own=True, emf_namespaces)``, but with each
    log line that may be taken as it came left as its entry's bytes (``split_entries``: a
    ``bytes`` in ``events``, its type told by ``verbatim_type``); None where
    ``split_entries`` cannot split ``body`` or an entry is not JSON (decode it whole:
    that counts what is wrong).

    An entry stays bytes when it has the platform's time format, a log type something
    reads, and none of our own lines' marks; any other entry (the platform's records,
    our own lines, which are skipped) is decoded on its own.
    """
    entries = split_entries(body)
    if entries is None:
        return None
    taken = tuple(prefix for prefix, kind in ((_FUNCTION_ENTRY, "function"), (_EXTENSION_ENTRY, "extension"))
                  if kind not in unread_types)
    own_possible = any(mark in body for mark in _OWN_MARKS)
    if not own_possible and all(map(bytes.startswith, entries, repeat(taken), repeat(TYPE_OFFSET))):
        return DecodedBatch(entries, [])  # type: ignore[arg-type]  # the usual batch of log lines
    events: list[TelemetryEvent | bytes] = []
    append = events.append
    malformed: list[MalformedEntry] = []
    unread = own = 0
    for entry in entries:
        marked = own_possible and any(mark in entry for mark in _OWN_MARKS)
        if not marked and entry.startswith(taken, TYPE_OFFSET):
            append(entry)
            continue
        try:
            item = json.loads(ENTRY_OPENING + entry + ENTRY_CLOSING)
        except (ValueError, RecursionError):
            return None
        one = decode_events([item], unread_types, True, emf_namespaces)
        events += one.events
        malformed += one.malformed
        unread += one.unread
        own += one.own
    return DecodedBatch(events, malformed, unread, own)  # type: ignore[arg-type]


def verbatim_type(entry: bytes) -> str:
    """The type of an entry ``decode_verbatim`` left as bytes."""
    return "function" if entry.startswith(_FUNCTION_ENTRY, TYPE_OFFSET) else "extension"


def count_function_entries(entries: list[bytes]) -> int:
    """How many of the entries ``decode_verbatim`` left as bytes are ``function`` lines."""
    return sum(map(bytes.startswith, entries, repeat(_FUNCTION_ENTRY), repeat(TYPE_OFFSET)))


def entry_time(entry: bytes) -> str:
    """The time of an entry ``decode_verbatim`` left as bytes."""
    return entry[:TYPE_OFFSET].decode()


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
