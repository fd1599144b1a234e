"""requests: one span per ``Session.send`` (retries and redirects of one send within it).

Attributes: ``http_semconv``. With propagation on, the prepared request carries
``traceparent`` and ``X-Amzn-Trace-Id`` naming this span.
"""

from __future__ import annotations

import sys

from . import http_semconv

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from .spans import Recorder


def patch(recorder: Recorder) -> None:
    session_class = sys.modules["requests.sessions"].Session
    session_class.send = _traced_send(session_class.send, recorder)


def _traced_send(original: Callable, recorder: Recorder) -> Callable:
    def send(self: object, request: object, **kwargs: object) -> object:
        span = None
        try:
            if recorder.current() is None:
                span = recorder.start(*_start(request))
                if span is not None and recorder.propagate:
                    _add_trace_headers(request, span)
        except Exception:  # an unusual request goes out untraced
            span = None
        if span is None:
            return original(self, request, **kwargs)
        try:
            response = original(self, request, **kwargs)
        except BaseException as error:
            failed = getattr(error, "response", None)
            if failed is not None:
                _response(span.attributes, failed)
            http_semconv.exception_error(span.attributes, error)
            recorder.end(span, exception=error)
            raise
        recorder.end(span, error=_response(span.attributes, response))
        return response

    send.__wrapped__ = original  # type: ignore[attr-defined]
    return send


def _start(request: object) -> tuple[str, str, dict[str, object]]:
    from urllib.parse import urlsplit  # requests imported it already

    url = str(request.url)  # type: ignore[attr-defined]
    parts = urlsplit(url)
    name, attributes = http_semconv.request_attributes(
        str(request.method), url, parts.hostname, parts.port, parts.scheme  # type: ignore[attr-defined]
    )
    return name, "requests", attributes


def _response(attributes: dict[str, object], response: object) -> str | None:
    raw = getattr(response, "raw", None)
    return http_semconv.response_error(
        attributes, getattr(response, "status_code", None), getattr(raw, "version", None)
    )


def _add_trace_headers(request: object, span: object) -> None:
    traceparent = span.traceparent()  # type: ignore[attr-defined]
    xray = span.xray_header()  # type: ignore[attr-defined]
    headers = getattr(request, "headers", None)
    if traceparent is None or xray is None or headers is None:
        return
    headers["traceparent"] = traceparent
    headers["X-Amzn-Trace-Id"] = xray
