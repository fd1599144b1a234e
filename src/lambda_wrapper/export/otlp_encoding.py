"""OTLP/JSON building blocks shared by the logs, metrics and traces encoders.

OTLP/JSON is the protobuf JSON mapping with two OTLP-specific rules: trace and span
ids are lowercase hex (not base64), and enum fields are integers. 64-bit integers
(``intValue``, ``timeUnixNano``, ``asInt``) are JSON strings. No OpenTelemetry SDK is
involved: the layer ships none, and these dicts are all the protocol needs.
"""

from __future__ import annotations

import os
import time
from json.encoder import encode_basestring as _json_string

from .. import __version__

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Iterable

    from . import FunctionMetadata

SCOPE = {"name": "lambda-wrapper", "version": __version__}
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MAX_DEPTH = 32  # deeper JSON records are rare; past this a value is sent as its text
_MIB = 1024 * 1024
_MAX_EPOCH_MS = (2**64 - 1) // 1_000_000  # year 2554


def any_value(value: object, depth: int = 0) -> dict[str, object]:
    """The AnyValue for a decoded JSON value (null is the empty AnyValue)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"stringValue": str(value)}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if depth >= _MAX_DEPTH:
        return {"stringValue": repr(value)[:4096]}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(item, depth + 1) for item in value]}}
    if isinstance(value, dict):
        return {
            "kvlistValue": {
                "values": [
                    {"key": str(key), "value": any_value(item, depth + 1)} for key, item in value.items()
                ]
            }
        }
    return {"stringValue": str(value)}


def any_value_json(value: object, depth: int = 0) -> str:
    """``any_value(value)`` as compact JSON text, written directly: a log line's body is
    encoded once, without the dicts in between (non-ASCII kept, as ``json_body`` sends)."""
    if isinstance(value, dict) and depth < _MAX_DEPTH:  # a JSON-format log line's record: tested first
        # A string member, the usual one, is written here rather than by a call, each
        # member by one f-string (one allocation, where ``+`` makes one per step), and
        # the text before its value looked up by key: a function's records share keys.
        head = _member_heads.get
        return '{"kvlistValue":{"values":[' + ",".join([
            f'{head(key) or _member_head(key)}{{"stringValue":{_json_string(item)}}}}}' if type(item) is str
            else f"{head(key) or _member_head(key)}{any_value_json(item, depth + 1)}}}"
            for key, item in value.items()
        ]) + "]}}"
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return '{"intValue":"' + str(int(value)) + '"}'
        return '{"stringValue":"' + str(int(value)) + '"}'
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return '{"stringValue":' + _json_string(str(value)) + "}"
        return '{"doubleValue":' + float.__repr__(value) + "}"
    if isinstance(value, str):
        return '{"stringValue":' + _json_string(value) + "}"
    if depth >= _MAX_DEPTH:
        return '{"stringValue":' + _json_string(repr(value)[:4096]) + "}"
    if isinstance(value, (list, tuple)):
        values = ",".join([any_value_json(item, depth + 1) for item in value])
        return '{"arrayValue":{"values":[' + values + "]}}"
    return '{"stringValue":' + _json_string(str(value)) + "}"


# The text of a kvlist member before its value, by key. Only string keys are kept (a
# JSON object's are): ``1`` and ``True`` are one key of a dict but are written "1" and
# "True". The first keys met only, since the keys are whatever the function logs.
_member_heads: dict[str, str] = {}
_MEMBER_HEADS_LIMIT = 256


def _member_head(key: object) -> str:
    head = '{"key":' + _json_string(key if type(key) is str else str(key)) + ',"value":'
    if type(key) is str and len(_member_heads) < _MEMBER_HEADS_LIMIT:
        _member_heads[key] = head
    return head


def attributes(pairs: Iterable[tuple[str, object]]) -> list[dict[str, object]]:
    """KeyValue list; None values are left out (an absent attribute, not an empty one)."""
    return [{"key": key, "value": any_value(value)} for key, value in pairs if value is not None]


def unix_nanos(epoch_ms: float) -> str:
    """A fixed64 timestamp: clamped to what the field holds (the lenient decoder reads
    years 1 to 9999, and a record's duration can be anything)."""
    if not 0 <= epoch_ms < _MAX_EPOCH_MS:  # also False for NaN
        epoch_ms = 0.0 if not epoch_ms > 0 else _MAX_EPOCH_MS - 1
    # Split before scaling: a float holds ~16 digits, an epoch in ns has 19. The inputs
    # have millisecond (at best microsecond) precision, so round to the microsecond.
    whole = int(epoch_ms)
    return str(whole * 1_000_000 + round((epoch_ms - whole) * 1_000) * 1_000)


def now_nanos() -> str:
    return str(time.time_ns())


def new_trace_id() -> str:
    return _random_hex(16)


def new_span_id() -> str:
    return _random_hex(8)


def _random_hex(size: int) -> str:
    while True:
        value = os.urandom(size).hex()
        if value.strip("0"):  # all-zero ids are invalid in OTLP
            return value


def resource_attributes(
    metadata: FunctionMetadata, service_name: str | None, extra: Iterable[tuple[str, str]] = ()
) -> list[dict[str, object]]:
    """Resource attributes per the FaaS and cloud semantic conventions.

    Precedence as in the OpenTelemetry SDKs: ``OTEL_RESOURCE_ATTRIBUTES`` overrides what
    we detect, and ``OTEL_SERVICE_NAME`` overrides both for ``service.name``.
    """
    detected: dict[str, object] = {
        "service.name": metadata.name or "unknown_service",
        "cloud.provider": "aws",
        "cloud.platform": "aws_lambda",
        "cloud.region": metadata.region,
        "faas.name": metadata.name,
        "faas.version": metadata.version,
        "faas.instance": metadata.log_stream,
        "faas.max_memory": metadata.memory_mb * _MIB if metadata.memory_mb is not None else None,
        "aws.log.group.names": [metadata.log_group] if metadata.log_group else None,
        "telemetry.distro.name": "lambda-wrapper",
        "telemetry.distro.version": __version__,
    }
    detected.update(extra)
    if service_name:
        detected["service.name"] = service_name
    return attributes(detected.items())
