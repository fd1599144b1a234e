"""urllib3: one span per ``HTTPConnectionPool.urlopen``, its retries and redirects within it.

Attributes: ``http_semconv``. With propagation on, the request carries ``traceparent``
and ``X-Amzn-Trace-Id`` naming this span (the caller's headers are copied, never changed).
"""

from __future__ import annotations

import sys

from . import http_semconv

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from .spans import Recorder


def patch(recorder: Recorder) -> None:
    pool_class = sys.modules["urllib3.connectionpool"].HTTPConnectionPool
    pool_class.urlopen = _traced_urlopen(pool_class.urlopen, recorder)


def _traced_urlopen(original: Callable, recorder: Recorder) -> Callable:
    def urlopen(self: object, method: str, url: str, *args: object, **kwargs: object) -> object:
        span = None
        try:
            if recorder.current() is None:
                scheme = getattr(self, "scheme", "http") or "http"
                host, port = self.host, self.port  # type: ignore[attr-defined]
                full_url = http_semconv.host_url(scheme, host, port, url)
                span = recorder.start(*_start(method, full_url, host, port, scheme))
                if span is not None and recorder.propagate:
                    args, kwargs = _with_trace_headers(self, span, args, kwargs)
        except Exception:  # an unusual call goes out untraced
            span = None
        if span is None:
            return original(self, method, url, *args, **kwargs)
        try:
            response = original(self, method, url, *args, **kwargs)
        except BaseException as error:
            http_semconv.exception_error(span.attributes, error)
            recorder.end(span, exception=error)
            raise
        error_message = http_semconv.response_error(
            span.attributes, getattr(response, "status", None), getattr(response, "version", None)
        )
        recorder.end(span, error=error_message)
        return response

    urlopen.__wrapped__ = original  # type: ignore[attr-defined]
    return urlopen


def _start(
    method: str, url: str, host: str, port: int | None, scheme: str
) -> tuple[str, str, dict[str, object]]:
    name, attributes = http_semconv.request_attributes(method, url, host, port, scheme)
    return name, "urllib3", attributes


def _with_trace_headers(pool: object, span: object, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    # urlopen(method, url, body=None, headers=None, ...): headers is the 2nd extra argument.
    headers = args[1] if len(args) >= 2 else kwargs.get("headers")
    if headers is None:
        headers = getattr(pool, "headers", None) or {}
    headers = headers.copy() if hasattr(headers, "copy") else dict(headers)
    traceparent = span.traceparent()  # type: ignore[attr-defined]
    xray = span.xray_header()  # type: ignore[attr-defined]
    if traceparent is None or xray is None:
        return args, kwargs
    headers["traceparent"] = traceparent
    headers["X-Amzn-Trace-Id"] = xray
    if len(args) >= 2:
        return (args[0], headers, *args[2:]), kwargs
    return args, {**kwargs, "headers": headers}
