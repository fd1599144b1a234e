"""Validation of Telemetry API and Logs API subscription bodies (contract 3.1).

The limits are the ones RAPID's schema and the AWS table agree on. Like the
developer guide's example ("URI port is not provided; types should not be empty"),
every problem found is reported, joined with "; ". Unknown fields are tolerated
(OTEL sends ``method``/``encoding`` to the Telemetry API and works in production).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TELEMETRY_SCHEMAS = ("2022-07-01", "2022-12-13", "2025-01-29")
LOGS_SCHEMAS = ("2020-08-15", "2021-03-18")
EVENT_TYPES = ("platform", "function", "extension")
SANDBOX_HOSTS = ("sandbox.localdomain", "sandbox")
LIMITS = {"maxItems": (1000, 10000), "maxBytes": (262144, 1048576), "timeoutMs": (25, 30000)}
DEFAULTS = {"maxItems": 10000, "maxBytes": 262144, "timeoutMs": 1000}


@dataclass(frozen=True)
class Destination:
    protocol: str  # "HTTP" or "TCP"
    port: int
    path: str = "/"
    method: str = "POST"
    uri: str = ""


@dataclass(frozen=True)
class Buffering:
    max_items: int
    max_bytes: int
    timeout_ms: int


@dataclass(frozen=True)
class SubscriptionRequest:
    api: str  # "telemetry" or "logs"
    schema_version: str
    types: tuple[str, ...]
    buffering: Buffering
    destination: Destination


class SubscriptionInvalid(ValueError):
    pass


def parse_subscription(api: str, body: Any) -> SubscriptionRequest:
    """Validate ``body`` (already JSON-decoded) or raise ``SubscriptionInvalid``."""
    if not isinstance(body, dict):
        raise SubscriptionInvalid("request body should be a JSON object")
    problems: list[str] = []
    # Destination first, then types: the order of the developer guide's example.
    destination = _destination(api, body.get("destination"), problems)
    types = _types(body.get("types"), problems)
    schema = _schema_version(api, body.get("schemaVersion"), problems)
    buffering = _buffering(body.get("buffering"), problems)
    if problems or destination is None:
        raise SubscriptionInvalid("; ".join(problems))
    return SubscriptionRequest(api, schema, types, buffering, destination)


def _schema_version(api: str, value: Any, problems: list[str]) -> str:
    allowed = TELEMETRY_SCHEMAS if api == "telemetry" else LOGS_SCHEMAS
    if value is None and api == "logs":
        return LOGS_SCHEMAS[0]
    if value not in allowed:
        problems.append(f"schemaVersion should be one of {', '.join(allowed)}")
        return ""
    return str(value)


def _types(value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.append("types should not be empty")
        return ()
    if any(item not in EVENT_TYPES for item in value):
        problems.append(f"types should only contain {', '.join(EVENT_TYPES)}")
        return ()
    return tuple(dict.fromkeys(value))


def _buffering(value: Any, problems: list[str]) -> Buffering:
    settings = dict(DEFAULTS)
    if value is not None and not isinstance(value, dict):
        problems.append("buffering should be an object")
        value = None
    for key, (low, high) in LIMITS.items():
        given = (value or {}).get(key)
        if given is None:
            continue
        if isinstance(given, bool) or not isinstance(given, int) or not low <= given <= high:
            problems.append(f"buffering.{key} should be an integer between {low} and {high}")
            continue
        settings[key] = given
    return Buffering(settings["maxItems"], settings["maxBytes"], settings["timeoutMs"])


def _destination(api: str, value: Any, problems: list[str]) -> Destination | None:
    if not isinstance(value, dict):
        problems.append("destination is not provided")
        return None
    protocol = value.get("protocol")
    if protocol == "TCP":
        port = value.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append("destination.port should be an integer between 1 and 65535")
            return None
        return Destination("TCP", port)
    if protocol != "HTTP":
        problems.append("destination.protocol should be HTTP or TCP")
        return None
    method = value.get("method", "POST")
    if api == "logs" and method not in ("POST", "PUT"):
        problems.append("destination.method should be POST or PUT")
    return _http_destination(value.get("URI"), method if api == "logs" else "POST", problems)


def _http_destination(uri: Any, method: str, problems: list[str]) -> Destination | None:
    if not isinstance(uri, str) or not uri:
        problems.append("URI is not provided")
        return None
    parts = urlsplit(uri)
    if parts.scheme != "http":
        problems.append("URI scheme should be http")
        return None
    if parts.hostname not in SANDBOX_HOSTS:
        problems.append("destination.URI host must be sandbox.localdomain")
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        problems.append("URI port is not provided")
        return None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Destination("HTTP", port, path, method, uri)
