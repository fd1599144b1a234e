"""OpenTelemetry's HTTP client conventions, shared by the urllib3, requests and http.client spans.

Span name: the method (``HTTP`` for one outside the known set, which is then recorded
as ``_OTHER`` with the original in ``http.request.method_original``). Attributes:
``http.request.method``, ``url.full`` (credentials redacted), ``server.address``,
``server.port``; then ``http.response.status_code``, ``network.protocol.version`` and,
for a status of 400 or more, ``error.type`` (the status) and the span's error; a call
that raised has ``error.type`` = the exception's class name.
"""

from __future__ import annotations

from .spans import redact_url, server_attributes

KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def request_attributes(method: str, url: str, host: str | None, port: int | None,
                       scheme: str) -> tuple[str, dict[str, object]]:
    """(span name, start attributes) of one request."""
    upper = method.upper()
    attributes: dict[str, object]
    if upper in KNOWN_METHODS:
        name = upper
        attributes = {"http.request.method": upper}
    else:
        name = "HTTP"
        attributes = {"http.request.method": "_OTHER", "http.request.method_original": method}
    attributes["url.full"] = redact_url(url)
    attributes.update(server_attributes(host, port, DEFAULT_PORTS.get(scheme, 80)))
    return name, attributes


def response_error(attributes: dict[str, object], status: object, version: object = None) -> str | None:
    """Record the response; the span's error message for a failed status, else None."""
    if not isinstance(status, int):
        return None
    attributes["http.response.status_code"] = status
    if version in (10, 11):
        attributes["network.protocol.version"] = "1.1" if version == 11 else "1.0"
    if status >= 400:
        attributes["error.type"] = str(status)
        return f"HTTP {status}"
    return None


def exception_error(attributes: dict[str, object], exception: BaseException) -> None:
    attributes["error.type"] = type(exception).__qualname__


def host_url(scheme: str, host: str, port: int | None, path: str) -> str:
    """The full URL of a request sent to a connection: its path, or the absolute URL
    a request through a proxy carries."""
    if not path.startswith("/"):
        return path
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    default = DEFAULT_PORTS.get(scheme)
    authority = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{authority}{path}"
