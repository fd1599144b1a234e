"""The ``file`` exporter: NDJSON under /tmp, one exported record per line.

A line is ``TelemetryEvent.to_output()``; a ``platform.report`` line also carries the
invocation's classification under ``invocation`` (``telemetry``: invocations), the same
one the EMF and OTLP exporters count.
"""

from __future__ import annotations

import json
import os
from json.encoder import encode_basestring_ascii as _json_string

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
    """The encoding of ``event.to_output()`` for each log line, assembled without
    building the dict (a third of the generic encoding's cost), and ``other(event)``
    for any other event, called in order. The keys and their order are
    ``to_output``'s, the escaping the encoder's."""
    lines: list[_Line] = []
    append = lines.append
    last_time = last_kind = start = ""
    last_request_id: str | None = None
    request_member = ""
    for event in events:
        kind = event.type
        if kind not in _LOG_TYPES:
            append(other(event))
            continue
        if event.time != last_time or kind != last_kind:  # a batch's lines mostly share both
            last_time, last_kind = event.time, kind
            start = '{"time":' + _json_string(last_time) + ',"type":' + _json_string(kind) + ',"record":'
        record = event.record
        if type(record) is str and event._message is ...:
            # The message is the record less a final "\n" (``TelemetryEvent.message``): its
            # encoding is the record's less that escape, the same text escaped once.
            encoded_record = _json_string(record)
            newline = record[-1:] == "\n"
            if event.request_id is None and event.metrics is None:  # the usual line: one step
                if newline:
                    append(f'{start}{encoded_record},"message":{encoded_record[:-3]}"}}\n')
                else:
                    append(f'{start}{encoded_record},"message":{encoded_record}}}\n')
                continue
            encoded_message = ',"message":' + (encoded_record[:-3] + '"' if newline else encoded_record)
        else:
            if type(record) is str:
                encoded_record = _json_string(record)
            elif _ENCODE_DECODED is not None:  # a JSON-format line's object: the call inline
                encoded_record = "".join(_ENCODE_DECODED(record, 0))
            else:
                encoded_record = _encode_decoded(record)
            message = event._message  # the property's frame only where the message is made when read
            if message is ...:
                message = event.message
            if message is None:
                encoded_message = ""
            elif message is record:
                encoded_message = ',"message":' + encoded_record
            else:
                encoded_message = ',"message":' + _json_string(message)
        request_id = event.request_id
        if request_id is None and event.metrics is None:
            append(f"{start}{encoded_record}{encoded_message}}}\n")
            continue
        if request_id is not None and request_id != last_request_id:  # an invocation's lines share it
            last_request_id = request_id
            request_member = ',"requestId":' + _json_string(request_id)
        if event.metrics is None:  # a JSON-format line with its request id: one f-string
            append(f"{start}{encoded_record}{request_member}{encoded_message}}}\n")
            continue
        line = start + encoded_record
        if request_id is not None:
            line += request_member
        line += encoded_message
        line += ',"metrics":' + _encode_decoded(event.metrics)
        append(line + "}\n")
    return lines


class FileExporter(Exporter):
    name = "file"
    local = True
    telemetry_types = ("platform", "function", "extension")

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
                # One write per chunk. The lines are ASCII: every string in them is escaped.
                write_all(fd, "".join(_lines(events[start:start + CHUNK], self._generic_line)).encode())
                # Let the listener thread in: it shares the GIL with this loop.
                let_the_listener_in(deadline)
        finally:
            os.close(fd)
        self.exported += len(events)

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
