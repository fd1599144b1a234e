"""The ``file`` exporter: NDJSON under /tmp, one exported record per line.

A log line (``function``, ``extension``) is written as the platform sent it: its entry
of the batch, taken out without decoding where the batch allows it
(``log_lines.decode_verbatim``), else encoded again from the decoded entry. Any other
record's line is ``TelemetryEvent.to_output()``; a ``platform.report`` line also carries
the invocation's classification under ``invocation`` (``telemetry``: invocations), the
same one the EMF and OTLP exporters count.
"""

from __future__ import annotations

import json
import os
from json.encoder import encode_basestring_ascii as _json_string

from ..log_lines import ENTRY_CLOSING, ENTRY_OPENING
from ..telemetry import InvocationClassifier
from . import Exporter, let_the_listener_in, write_all

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    from ..telemetry import TelemetryEvent

    _Line = TypeVar("_Line", str, "str | None")


# One encoder for every line: json.dumps given options builds a new encoder per call,
# a cost paid per record on the export path.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
# The same encoding of a decoded JSON value, without ``encode``'s set-up per call (half
# the cost of a JSON-format log line's record). Decoded JSON has no cycles to check for.
_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
_ENCODE_DECODED = _make_encoder(None, str, _json_string, None, ":", ",", False, False, True) \
    if _make_encoder is not None else None


def _encode_decoded(value: object) -> str:
    if _ENCODE_DECODED is None:
        return _ENCODER.encode(value)
    return "".join(_ENCODE_DECODED(value, 0))
CHUNK = 1000
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_LOG_TYPES = ("function", "extension")


def _lines(events: Sequence[TelemetryEvent], other: Callable[[TelemetryEvent], _Line]) -> list[_Line]:
    """The line of each log line, its entry as the platform sent it (``time``, ``type``,
    ``record``, any other envelope field), and ``other(event)`` for any other event,
    called in order. The encoding is the shared encoder's, compact."""
    lines: list[_Line] = []
    append = lines.append
    last_time = last_kind = start = ""
    for event in events:
        kind = event.type
        if kind not in _LOG_TYPES:
            append(other(event))
            continue
        envelope = event._envelope
        if envelope is not None and len(envelope) != 3:  # fields beside time, type and record
            append(_encode_decoded(envelope) + "\n")
            continue
        if event.time != last_time or kind != last_kind:  # a batch's lines mostly share both
            last_time, last_kind = event.time, kind
            start = '{"time":' + _json_string(last_time) + ',"type":' + _json_string(kind) + ',"record":'
        record = event.record
        if type(record) is str:
            append(f"{start}{_json_string(record)}}}\n")
        elif _ENCODE_DECODED is not None:  # a JSON-format line's object: the call inline
            append(f"{start}{''.join(_ENCODE_DECODED(record, 0))}}}\n")
        else:
            append(f"{start}{_encode_decoded(record)}}}\n")
    return lines


def _entry_lines(entries: list[bytes]) -> bytes:
    """The lines of entries ``log_lines.split_entries`` gave: each made whole again."""
    return ENTRY_OPENING + (ENTRY_CLOSING + b"\n" + ENTRY_OPENING).join(entries) + ENTRY_CLOSING + b"\n"


class FileExporter(Exporter):
    name = "file"
    local = True
    telemetry_types = ("platform", "function", "extension")
    verbatim_log_lines = True

    def __init__(self, path: str) -> None:
        self.path = path
        self.exported = 0
        self._invocations = InvocationClassifier()

    def prepare(self) -> None:
        pass  # nothing to set up

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        if not events:
            return
        fd = self._open()
        try:
            for start in range(0, len(events), CHUNK):
                write_all(fd, self._chunk(events[start:start + CHUNK]))
                # Let the listener thread in: it shares the GIL with this loop.
                let_the_listener_in(deadline)
        finally:
            os.close(fd)
        self.exported += len(events)

    def _chunk(self, events: Sequence[TelemetryEvent | bytes]) -> bytes:
        """The lines of ``events``, to write at once: a log line left as its entry's bytes
        is written as it came, the others are encoded (ASCII: every string is escaped)."""
        parts: list[bytes] = []
        entries: list[bytes] = []
        decoded: list[TelemetryEvent] = []
        for event in events:
            if type(event) is bytes:
                if decoded:
                    parts.append("".join(_lines(decoded, self._generic_line)).encode())
                    decoded = []
                entries.append(event)
            else:
                if entries:
                    parts.append(_entry_lines(entries))
                    entries = []
                decoded.append(event)  # type: ignore[arg-type]
        if entries:
            parts.append(_entry_lines(entries))
        if decoded:
            parts.append("".join(_lines(decoded, self._generic_line)).encode())
        return b"".join(parts)

    def _open(self) -> int:
        """The file, to append to, as a descriptor (a text file object costs a buffer, a
        codec and three more system calls per export call); its directory is made where
        it is missing (the first export, or removed since), not looked for every time."""
        try:
            return os.open(self.path, _APPEND, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            return os.open(self.path, _APPEND, 0o666)

    def _generic_line(self, event: TelemetryEvent) -> str:
        """The line of an event that is not a log line; called in delivery order, since
        the classifier reads a runtimeDone before its report."""
        return _ENCODER.encode(self._invocations.output(event)) + "\n"
