"""The ``xray`` exporter: call spans as X-Ray subsegments of the function's segment, over UDP.

With active tracing on, Lambda runs the X-Ray daemon at ``AWS_XRAY_DAEMON_ADDRESS``
(``host:port``, or ``tcp:host:port udp:host:port``) and gives each invocation an
``X-Amzn-Trace-Id`` whose ``Parent`` is the function's segment. Each
``lambda_wrapper.span`` of a sampled invocation becomes one segment document
(``{"format": "json", "version": 1}`` and a newline, then the document) with
``type`` = ``subsegment``, that ``parent_id`` and ``trace_id``, sent in one datagram
from a non-blocking socket on the extension's thread: nothing here waits.

Documented segment fields used: ``name`` (the AWS service, or the host of an HTTP
call), ``id``, ``trace_id``, ``parent_id``, ``start_time``, ``end_time``,
``namespace`` (``aws`` or ``remote``), ``http.request`` (``method``, ``url``),
``http.response`` (``status``), ``aws`` (``operation``, ``region``, ``request_id``,
``retries``, ``table_name(s)``, ``queue_url``, ``bucket_name``), ``error`` (4xx),
``throttle`` (429), ``fault`` (5xx, or an exception without a response) and
``cause.exceptions``. Not sent, and counted: calls outside a sampled invocation (at
Init there is no segment to attach to; unsampled ones X-Ray would not keep), and
documents larger than a datagram (``dropped``, with one line per export that drops).
"""

from __future__ import annotations

import json
import os
import socket

from .. import aws
from ..instruments import SPAN
from ..instruments.calls.spans import xray_parts
from ..settings import emit
from . import Exporter

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..telemetry import TelemetryEvent

DEFAULT_ADDRESS = ("127.0.0.1", 2000)
HEADER = b'{"format": "json", "version": 1}\n'
MAX_DATAGRAM_BYTES = 65507  # the largest UDP payload over IPv4
_NAME_LIMIT = 200
_NAME_PUNCTUATION = frozenset(" _.:/%&#=+\\-@")
_TEXT_LIMIT = 2048


class XrayExporter(Exporter):
    name = "xray"
    local = True  # one non-blocking datagram per span: nothing to budget or wait for
    telemetry_types = ("platform",)  # it sends only our own call spans

    def __init__(self, address: tuple[str, int] | None = None) -> None:
        self.address = address or daemon_address(os.environ)
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self.sent = 0
        self.dropped = 0  # too large for a datagram, or the send failed
        self.not_sampled = 0  # outside an invocation, or an unsampled one

    def prepare(self) -> None:
        pass  # nothing to set up

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        too_large = failed = 0
        for event in events:
            if event.type != SPAN:
                continue
            document = subsegment(event.record)
            if document is None:
                self.not_sampled += 1
                continue
            datagram = HEADER + json.dumps(document, separators=(",", ":"), default=str).encode()
            if len(datagram) > MAX_DATAGRAM_BYTES:
                too_large += 1
                continue
            try:
                self._socket.sendto(datagram, self.address)
            except OSError:  # a full socket buffer or no route: UDP gives no second chance
                failed += 1
                continue
            self.sent += 1
        if too_large or failed:
            self.dropped += too_large + failed
            emit(
                "warning", "xray_dropped",
                f"xray: dropped {too_large} subsegments larger than a datagram and {failed} the socket "
                f"refused ({self.dropped} in all)",
                exporter=self.name, tooLarge=too_large, sendFailed=failed, dropped=self.dropped,
            )


def daemon_address(environ: Mapping[str, str]) -> tuple[str, int]:
    """The UDP address in ``AWS_XRAY_DAEMON_ADDRESS``; raises ValueError when it has none."""
    raw = environ.get(aws.XRAY_DAEMON_ADDRESS, "").strip()
    if not raw:
        return DEFAULT_ADDRESS
    candidate = raw
    for part in raw.split():
        kind, sep, rest = part.partition(":")
        if sep and kind.lower() == "udp":
            candidate = rest
            break
        if sep and kind.lower() == "tcp":
            candidate = ""
    host, sep, port = candidate.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"AWS_XRAY_DAEMON_ADDRESS={raw!r} has no udp host:port")
    return host, int(port)


def subsegment(record: object) -> dict[str, object] | None:
    """The segment document of one call span; None when it belongs to no sampled segment."""
    if not isinstance(record, dict):
        return None
    header = record.get("traceHeader")
    root, parent, sampled = xray_parts(header if isinstance(header, str) else None)
    span_id = record.get("spanId")
    start_ms, duration = record.get("startEpochMs"), record.get("durationMs")
    if not _is_trace_id(root) or not _is_hex(parent, 16) or sampled != "1" or not _is_hex(span_id, 16):
        return None
    if not _is_number(start_ms) or not _is_number(duration):
        return None
    start_s = float(start_ms) / 1000.0  # type: ignore[arg-type]
    end_s = start_s + max(0.0, float(duration)) / 1000.0  # type: ignore[arg-type]
    attributes = record.get("attributes")
    attrs: dict[str, object] = attributes if isinstance(attributes, dict) else {}
    aws_call = attrs.get("rpc.system") == "aws-api"
    service = attrs.get("rpc.service") if aws_call else attrs.get("server.address")
    document: dict[str, object] = {
        "name": _name(service, record.get("name")),
        "id": span_id,
        "trace_id": root,
        "parent_id": parent,
        "type": "subsegment",
        "start_time": start_s,
        "end_time": end_s,
        "namespace": "aws" if aws_call else "remote",
    }
    status = attrs.get("http.response.status_code")
    http: dict[str, object] = {}
    method, url = attrs.get("http.request.method"), attrs.get("url.full")
    if isinstance(method, str) and isinstance(url, str):
        shown_method = attrs.get("http.request.method_original", method)
        http["request"] = {"method": shown_method, "url": url}
    if isinstance(status, int) and not isinstance(status, bool):
        http["response"] = {"status": status}
    if http:
        document["http"] = http
    if aws_call:
        document["aws"] = _aws_fields(attrs)
    exception = record.get("exception")
    if isinstance(status, int) and 400 <= status < 500:
        document["error"] = True
        if status == 429:
            document["throttle"] = True
    elif (isinstance(status, int) and status >= 500) or (record.get("error") is not None and status is None):
        document["fault"] = True
    if isinstance(exception, dict):
        document["cause"] = {"exceptions": [{
            "id": os.urandom(8).hex(),
            "message": str(exception.get("message"))[:_TEXT_LIMIT],
            "type": str(exception.get("type"))[:_TEXT_LIMIT],
            "remote": status is not None,
        }]}
    return document


def _aws_fields(attrs: dict[str, object]) -> dict[str, object]:
    fields: dict[str, object] = {"operation": attrs.get("rpc.method")}
    for key, name in (
        ("cloud.region", "region"),
        ("aws.request_id", "request_id"),
        ("retry_attempts", "retries"),
        ("aws.queue_url", "queue_url"),
        ("aws.s3.bucket", "bucket_name"),
    ):
        if attrs.get(key) is not None:
            fields[name] = attrs[key]
    tables = attrs.get("aws.dynamodb.table_names")
    if isinstance(tables, (list, tuple)):
        if len(tables) == 1:
            fields["table_name"] = tables[0]
        else:
            fields["table_names"] = list(tables)
    return fields


def _name(preferred: object, fallback: object) -> str:
    """A segment name: at most 200 of the characters X-Ray accepts."""
    text = preferred if isinstance(preferred, str) and preferred else str(fallback or "call")
    cleaned = "".join(c if c.isalnum() or c in _NAME_PUNCTUATION else "_" for c in text)
    return cleaned[:_NAME_LIMIT]


def _is_trace_id(value: str | None) -> bool:
    if value is None:
        return False
    pieces = value.split("-")
    return len(pieces) == 3 and pieces[0] == "1" and _is_hex(pieces[1], 8) and _is_hex(pieces[2], 24)


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and not value.lower().strip("0123456789abcdef")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
