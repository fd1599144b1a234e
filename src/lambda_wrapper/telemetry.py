"""Telemetry API records: the typed event model, the decoding of batches, and the one
classification of invocations every exporter reports.

Sections, each building on the one before: ``records`` (the event model), ``decode``
(request bodies of the Telemetry API and the legacy Logs API into events, without I/O;
the log lines' own decoding is ``log_lines``', loaded only where something reads them)
and ``invocations`` (what happened to one invocation).
"""

from __future__ import annotations

import functools
import json
import re

# ``typing`` costs ~15 ms to import; mypy honours a module-level TYPE_CHECKING constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import EllipsisType
    from typing import Any

    from .malformed import MalformedEntry

# What other modules use, of the three sections below.
__all__ = [
    "CLASSIFIER_INPUTS",
    "LOG_TYPES",
    "DecodedBatch",
    "InvocationClassifier",
    "TelemetryEvent",
    "decode_platform_events",
    "finite_number",
    "malformed_item",
    "parse_batch",
    "parse_time_ms",
    "platform_event",
    "record_source",
]
# What the decoder raises and reports about input it cannot read is ``malformed``'s,
# imported where such input is met: the default lifecycle never meets it.


# == records ===============================================================================
# The typed event model for Telemetry API batches.
#
# These classes run inside the user's Lambda process on every batch, so they are plain
# ``__slots__`` classes (no ``dataclasses``, no ``typing`` at run time) and they keep what
# Lambda sent untouched: ``record`` is exactly the decoded JSON value, whatever its shape.
# The handful of normalised fields are the ones every consumer would otherwise re-derive
# (parsed time, request id, log message, metrics, log level); anything rarer is a property
# computed from ``record`` on demand.


_ENVELOPE_KEYS = frozenset(("time", "type", "record"))


class TelemetryEvent:
    """One ``{"time", "type", "record"}`` entry of a batch, plus normalised fields.

    ``time``, ``type`` and ``record`` are as received. The normalised fields are None
    when the event does not carry that information:

    - ``epoch_ms``: ``time`` as milliseconds since the Unix epoch (None if unparsable).
    - ``request_id``: the record's ``requestId``; for awslambdaric text log lines
      (``"[INFO]\\t<time>\\t<request id>\\t<message>"``) the request id column.
    - ``message``: the log line of ``function``/``extension`` events (a string record,
      or the ``message`` field of a JSON-format object record), and the text of any
      other string record such as the Logs API ``platform.fault``. One trailing
      newline is removed here because Lambda keeps it on each captured line; ``record``
      keeps it.
    - ``metrics``: the record's ``metrics`` object.
    - ``level``: upper-cased log level of ``function``/``extension`` events, from a JSON
      record's ``level`` (or ``log_level``, used by awslambdaric for uncaught errors) or
      from the ``[LEVEL]`` prefix of awslambdaric's text format.
    """

    __slots__ = (
        "_envelope",
        "_message",
        "epoch_ms",
        "level",
        "metrics",
        "record",
        "request_id",
        "time",
        "type",
    )

    def __init__(
        self,
        time: str,
        type: str,
        record: object,
        epoch_ms: float | None = None,
        request_id: str | None = None,
        message: str | EllipsisType | None = None,
        metrics: dict[str, Any] | None = None,
        level: str | None = None,
        envelope: dict[str, Any] | None = None,
    ) -> None:
        self.time = time
        self.type = type
        self.record = record
        self.epoch_ms = epoch_ms
        self.request_id = request_id
        # ``...`` for a string record: its message is the record less one final newline,
        # made when read, so an exporter that writes the record whole never pays for it.
        self._message = message
        self.metrics = metrics
        self.level = level
        # The decoded entry itself, kept (not copied) so unknown envelope fields survive.
        self._envelope = envelope

    @property
    def message(self) -> str | None:
        message = self._message
        if message is not ...:
            return message
        record = self.record
        if type(record) is str:  # always, where ``...`` is set
            return record[:-1] if record[-1:] == "\n" else record
        return None

    @message.setter
    def message(self, value: str | None) -> None:
        self._message = value

    @property
    def status(self) -> str | None:
        """The record's ``status`` (``success``, ``failure``, ``error``, ``timeout``...)."""
        return self._record_str("status")

    @property
    def error_type(self) -> str | None:
        """The record's ``errorType`` (platform events, and JSON-format uncaught errors)."""
        return self._record_str("errorType")

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Envelope fields other than time/type/record (an own record's ``requestId`` from the spool)."""
        envelope = self._envelope
        if envelope is None or len(envelope) == 3:
            return {}
        return {key: value for key, value in envelope.items() if key not in _ENVELOPE_KEYS}

    def _record_str(self, key: str) -> str | None:
        record = self.record
        if isinstance(record, dict):
            value = record.get(key)
            if isinstance(value, str):
                return value
        return None

    def to_output(self) -> dict[str, Any]:
        """The object ``lambda-wrapper telemetry decode`` prints for this event."""
        output: dict[str, Any] = {"time": self.time, "type": self.type, "record": self.record}
        if self.request_id is not None:
            output["requestId"] = self.request_id
        if self.message is not None:
            output["message"] = self.message
        if self.metrics is not None:
            output["metrics"] = self.metrics
        return output

    def __repr__(self) -> str:
        return f"TelemetryEvent(time={self.time!r}, type={self.type!r}, record={self.record!r})"


class DecodedBatch:
    """The events of one batch in delivery order, the entries that had to be skipped, and
    how many well-formed entries were counted instead of built: of a type nothing reads
    (``unread``), the toolkit's own lines (``own``)."""

    __slots__ = ("events", "malformed", "own", "unread")

    def __init__(
        self, events: list[TelemetryEvent], malformed: list[MalformedEntry], unread: int = 0, own: int = 0
    ) -> None:
        self.events = events
        self.malformed = malformed
        self.unread = unread
        self.own = own

    def __repr__(self) -> str:
        return (f"DecodedBatch(events=<{len(self.events)} events>, malformed={self.malformed!r}, "
                f"unread={self.unread}, own={self.own})")


# == decode ================================================================================
# Turn Telemetry API request bodies into ``TelemetryEvent`` objects, without I/O.
#
# This runs inside the user's Lambda process for every delivered batch, so it must be
# cheap (one ``json.loads`` per batch, a few attribute reads per event, no heavy imports)
# and it must never fail on content: Lambda's payloads vary between schema versions
# (2022-07-01, 2022-12-13, 2025-01-29, and the older Logs API shapes), the docs' own
# examples contain malformed timestamps, and future versions will add types and fields.
# So an entry that cannot be an event is reported as malformed and skipped, an unknown
# type or field is kept as is, and a timestamp that cannot be parsed yields None. The
# only exception raised on input is ``UnreadableBatch``, when the body as a whole is not
# a JSON array.


# Types whose records are log lines (text, or objects in the JSON log format): decoding
# them, and telling the toolkit's own lines among them, is ``log_lines``'.
LOG_TYPES = frozenset(("function", "extension"))


def parse_batch(body: bytes | str) -> list[object]:
    """The entries of one Telemetry API POST body (a JSON array of events).

    Raises ``UnreadableBatch`` when the body is not JSON or not an array; what each entry
    holds is the decoder's business (``decode_platform_events``, ``log_lines.decode_events``).
    """
    if isinstance(body, str) and body.startswith("\ufeff"):
        # json.loads tolerates a BOM in bytes but not in str; be as lenient for both.
        body = body[1:]
    try:
        items = json.loads(body)
    except RecursionError as exc:
        from .malformed import UnreadableBatch

        raise UnreadableBatch("telemetry batch is not readable: JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, oversized integers
        from .malformed import UnreadableBatch

        raise UnreadableBatch(f"telemetry batch is not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        from .malformed import UnreadableBatch, json_kind

        raise UnreadableBatch(f"telemetry batch is a JSON {json_kind(items)}, expected an array of events")
    return items


def decode_platform_events(items: list[object]) -> DecodedBatch:
    """Decode a parsed batch of which nothing reads the log lines: ``function`` and
    ``extension`` entries are only counted (``DecodedBatch.unread``), every other entry
    becomes the event ``log_lines.decode_events`` would make of it, and an entry that is
    not an event becomes a ``MalformedEntry``.

    The pipeline's decoder when no exporter reads log lines (EMF, the default, reads
    platform records only), so that such an Init does not load the decoding of log lines.
    """
    events: list[TelemetryEvent] = []
    append = events.append
    malformed: list[MalformedEntry] = []
    unread = 0
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
        if type_ in LOG_TYPES:
            unread += 1
            continue
        if time != last_time:
            last_time = time
            last_epoch_ms = parse_time_ms(time)
        append(platform_event(time, type_, record, last_epoch_ms, item))
    return DecodedBatch(events, malformed, unread)


def platform_event(
    time: str, type_: str, record: object, epoch_ms: float | None, envelope: dict[str, object]
) -> TelemetryEvent:
    """The event of a well-formed entry that is not a log line (any entry whose record is
    neither a string nor an object is one too: there is nothing to read in it)."""
    request_id = metrics = None
    message: str | EllipsisType | None = None
    if isinstance(record, dict):
        value = record.get("requestId")
        if isinstance(value, str):
            request_id = value
        value = record.get("metrics")
        if isinstance(value, dict):
            metrics = value
    elif isinstance(record, str):
        message = ...  # the record less one final newline, made when read
    return TelemetryEvent(time, type_, record, epoch_ms, request_id, message, metrics, None, envelope)


def malformed_item(index: int, item: object) -> MalformedEntry:
    """The report of an entry that cannot be an event (at ``index`` of its batch)."""
    # Input the platform never sends: its module is loaded when such input is met.
    from .malformed import malformed_entry

    return malformed_entry(index, item)



_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MS_PER_DAY = 86_400_000


def parse_time_ms(text: object) -> float | None:
    """Milliseconds since the Unix epoch for an ISO-8601 timestamp, or None if unparsable.

    Lenient: Lambda sends "2022-10-12T00:01:15.000Z", but the docs show "12:01:23:521Z"
    (a colon before the millis), and other producers omit the seconds' fraction, use
    micro- or nanoseconds, a numeric offset, a space separator, or no zone (read as UTC).
    """
    if not isinstance(text, str):
        return None
    if (
        len(text) == 24
        and text[23] == "Z"
        and text[19] == "."
        and text[16] == ":"
        and text.isascii()
        and text[17:19].isdigit()
        and text[20:23].isdigit()
    ):
        # The platform's own "2006-01-02T15:04:05.000Z" form, by far the most common:
        # the minute is looked up, only seconds and millis are converted.
        minute_ms = _minute_cache.get(text[:16])
        if minute_ms is None:
            minute_ms = _canonical_minute_ms(text[:16])
        whole_seconds = int(text[17:19])
        if minute_ms is not None and whole_seconds <= 60:
            return float(minute_ms + whole_seconds * 1000 + int(text[20:23]))
    match = _lenient_timestamp().fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, offset_hours, offset_minutes = match.groups()
    return _epoch_ms(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second or 0),
        fraction,
        sign,
        int(offset_hours or 0),
        int(offset_minutes or 0),
    )


# Start of minute in epoch ms per "YYYY-MM-DDTHH:MM" prefix; a batch spans few minutes.
_minute_cache: dict[str, int] = {}
_MINUTE_CACHE_LIMIT = 1024


def _canonical_minute_ms(prefix: str) -> int | None:
    if not (
        prefix[4] == prefix[7] == "-"
        and prefix[10] == "T"
        and prefix[13] == ":"
        and (prefix[:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16]).isdigit()
    ):
        return None
    minute_ms = _epoch_ms(
        int(prefix[:4]),
        int(prefix[5:7]),
        int(prefix[8:10]),
        int(prefix[11:13]),
        int(prefix[14:16]),
        0,
        None,
        None,
        0,
        0,
    )
    if minute_ms is None:
        return None
    if len(_minute_cache) >= _MINUTE_CACHE_LIMIT:
        _minute_cache.clear()
    _minute_cache[prefix] = int(minute_ms)
    return int(minute_ms)


@functools.cache
def _lenient_timestamp() -> re.Pattern[str]:
    # Compiled on first need rather than at import: compiling costs ~0.4 ms of cold start.
    return re.compile(
        r"\s*(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,:](\d+))?)?"
        r"\s*(?:[Zz]|([+-])(\d{2})(?::?(\d{2}))?)?\s*",
        re.ASCII,  # int() would accept other scripts' digits; the platform never sends them
    )


def _epoch_ms(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    fraction: str | None,
    offset_sign: str | None,
    offset_hours: int,
    offset_minutes: int,
) -> float | None:
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    # 60 is a leap second; keep it rather than reject a real platform timestamp.
    if hour > 23 or minute > 59 or second > 60 or offset_hours > 23 or offset_minutes > 59:
        return None
    epoch_ms = _days_since_epoch(year, month, day) * _MS_PER_DAY
    epoch_ms += ((hour * 60 + minute) * 60 + second) * 1000
    offset_ms = (offset_hours * 60 + offset_minutes) * 60_000
    epoch_ms += -offset_ms if offset_sign == "+" else offset_ms
    if not fraction:
        return float(epoch_ms)
    # Whole milliseconds stay exact; finer digits (at most nanoseconds) add a fraction.
    result = float(epoch_ms + int(fraction[:3].ljust(3, "0")))
    finer = fraction[3:9]
    if finer:
        result += int(finer) / 10 ** len(finer)
    return result


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def _days_since_epoch(year: int, month: int, day: int) -> int:
    # Proleptic Gregorian day count (H. Hinnant's days_from_civil), to avoid importing
    # datetime or calendar on the cold path.
    if month <= 2:
        year -= 1
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


# == invocations ===========================================================================
# What happened to one invocation: the one classification every exporter reports.
#
# An invocation is told by several records that arrive apart: ``platform.runtimeDone``
# (the runtime's status and error type), ``platform.report`` (durations, memory; a
# status only since the 2022-12-13 schema), and our own ``lambda_wrapper.invocation``
# (whether it was a cold start, which the platform only implies through
# ``initDurationMs``). An exporter feeds every event it sees to its classifier, in
# delivery order, and asks it about each report. The rules live here alone, so EMF,
# OTLP and the file exporter can never count the same invocation differently:
#
# - ``status`` and ``error_type``: the report's own, else the runtimeDone's.
# - ``timed_out``: either says ``timeout``.
# - ``out_of_memory``: either names ``Runtime.OutOfMemory``, or the report's
#   ``maxMemoryUsedMB`` reached ``memorySizeMB``.
# - ``failed`` (the Errors count): an error type, a status other than ``success``, a
#   timeout or an out-of-memory death.
# - ``cold_start``: our invocation record's ``coldStart`` (it knows proactive inits),
#   else whether the report carries ``initDurationMs``.
# - ``source``: ``self`` when the report was made by the supervisor from its own
#   measurements (the self report in ``instruments``: the same types and fields as the
#   platform's, plus ``"source": "self"``), else ``platform``. Every exporter reports it
#   the same way: the file and HTTP exporters under ``invocation``, EMF as a property
#   (not a dimension, which would change the metrics' identity), OTLP as an attribute.
#
# What the classifier remembers is bounded: the newest ``MAX_REMEMBERED`` request ids.
# Classifying does not forget, so the same report seen twice (a retried export, a batch
# recovered from the spool) is classified the same way twice.


MAX_REMEMBERED = 64
OUT_OF_MEMORY = "Runtime.OutOfMemory"
TIMEOUT = "timeout"
SUCCESS = "success"
PLATFORM = "platform"
SELF = "self"
# The event types ``observe`` takes note of; an exporter may skip the call for others.
CLASSIFIER_INPUTS = frozenset(("platform.runtimeDone", "lambda_wrapper.invocation"))


class Invocation:
    """The classification of one ``platform.report``."""

    __slots__ = (
        "cold_start", "error_type", "failed", "out_of_memory", "request_id", "source", "status", "timed_out",
    )

    def __init__(
        self,
        request_id: str | None,
        status: str | None,
        error_type: str | None,
        cold_start: bool,
        timed_out: bool,
        out_of_memory: bool,
        source: str = PLATFORM,
    ) -> None:
        self.request_id = request_id
        self.status = status
        self.error_type = error_type
        self.cold_start = cold_start
        self.timed_out = timed_out
        self.out_of_memory = out_of_memory
        self.source = source
        self.failed = bool(error_type) or status not in (None, SUCCESS) or timed_out or out_of_memory

    def as_dict(self) -> dict[str, object]:
        """The classification as the file and HTTP exporters write it."""
        return {
            "status": self.status,
            "errorType": self.error_type,
            "coldStart": self.cold_start,
            "failed": self.failed,
            "timedOut": self.timed_out,
            "outOfMemory": self.out_of_memory,
            "source": self.source,
        }

    def __repr__(self) -> str:
        return f"Invocation({self.as_dict()!r})"


class InvocationClassifier:
    """Remembers what earlier records said of each request id; classifies reports."""

    __slots__ = ("_cold_starts", "_runtime_done")

    def __init__(self) -> None:
        self._runtime_done: dict[str, tuple[str | None, str | None]] = {}
        self._cold_starts: dict[str, bool] = {}

    def observe(self, event: TelemetryEvent) -> None:
        """Take note of a runtimeDone or one of our invocation records; ignore the rest."""
        request_id = event.request_id
        if request_id is None:
            return
        kind = event.type
        if kind == "platform.runtimeDone":
            _remember(self._runtime_done, request_id, (event.status, event.error_type))
        elif kind == "lambda_wrapper.invocation":
            record = event.record
            cold_start = record.get("coldStart") if isinstance(record, dict) else None
            if isinstance(cold_start, bool):
                _remember(self._cold_starts, request_id, cold_start)

    def output(self, event: TelemetryEvent) -> dict[str, object]:
        """``event.to_output()``, with the classification under ``invocation`` on a report."""
        kind = event.type
        if kind in CLASSIFIER_INPUTS:
            self.observe(event)
        output = event.to_output()
        if kind == "platform.report":
            output["invocation"] = self.classify(event).as_dict()
        return output

    def cold_start(self, request_id: str | None) -> bool | None:
        """What our own invocation record said, if it has been seen."""
        return self._cold_starts.get(request_id) if request_id is not None else None

    def classify(self, report: TelemetryEvent) -> Invocation:
        request_id = report.request_id
        done = self._runtime_done.get(request_id) if request_id is not None else None
        done_status, done_error = done or (None, None)
        status = report.status or done_status
        error_type = report.error_type or done_error
        values = report.metrics or {}
        memory_size = finite_number(values.get("memorySizeMB"))
        max_used = finite_number(values.get("maxMemoryUsedMB"))
        out_of_memory = OUT_OF_MEMORY in (error_type, done_error) or bool(
            memory_size and max_used is not None and max_used >= memory_size
        )
        timed_out = TIMEOUT in (status, done_status)
        cold_start = self.cold_start(request_id)
        if cold_start is None:
            cold_start = "initDurationMs" in values
        source = record_source(report)
        return Invocation(request_id, status, error_type, cold_start, timed_out, out_of_memory, source)


def record_source(event: TelemetryEvent) -> str:
    """``self`` for a platform-shaped record the supervisor made, else ``platform``."""
    record = event.record
    return SELF if isinstance(record, dict) and record.get("source") == SELF else PLATFORM


def finite_number(value: object) -> float | int | None:
    """A JSON number that is a finite double: booleans, NaN, infinities and ints too big
    for a double (json.loads accepts all of them) are not measurements."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return value if as_float - as_float == 0.0 else None  # False for NaN and infinities


def _remember(memory: dict, key: str, value: object) -> None:
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > MAX_REMEMBERED:
        del memory[next(iter(memory))]
