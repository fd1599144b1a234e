"""http.client: one span per request, from ``HTTPConnection.request`` to ``getresponse``.

This is the path of ``urllib.request`` and of code that uses http.client directly
(urllib3 sends through its own ``request`` and is its own instrumentation). The span
waits on the connection between the two calls, not on the thread, so a request whose
response is never read does not hide the thread's later calls; it ends, without a
status, when the connection sends its next request. Attributes: ``http_semconv``.
With propagation on, the request carries ``traceparent`` and ``X-Amzn-Trace-Id``
(the caller's headers are copied, never changed).
"""

from __future__ import annotations

import sys

from . import http_semconv

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from .spans import CallSpan, Recorder

PENDING = "_lambda_wrapper_span"  # the connection's span between request and getresponse


def patch(recorder: Recorder) -> None:
    connection_class = sys.modules["http.client"].HTTPConnection
    connection_class.request = _traced_request(connection_class.request, recorder)
    connection_class.getresponse = _traced_getresponse(connection_class.getresponse, recorder)


def _traced_request(original: Callable, recorder: Recorder) -> Callable:
    def request(self: object, method: str, url: str, *args: object, **kwargs: object) -> object:
        span = None
        try:
            earlier: CallSpan | None = self.__dict__.pop(PENDING, None)
            if earlier is not None:
                recorder.end_detached(earlier)
            if recorder.current() is None:
                scheme = "https" if getattr(self, "default_port", 80) == 443 else "http"
                host, port = self.host, self.port  # type: ignore[attr-defined]
                name, attributes = http_semconv.request_attributes(
                    method, http_semconv.host_url(scheme, host, port, url), host, port, scheme
                )
                span = recorder.start(name, "http.client", attributes)
                if span is not None and recorder.propagate:
                    args, kwargs = _with_trace_headers(span, args, kwargs)
        except Exception:  # an unusual call goes out untraced
            span = None
        if span is None:
            return original(self, method, url, *args, **kwargs)
        try:
            result = original(self, method, url, *args, **kwargs)
        except BaseException as error:
            http_semconv.exception_error(span.attributes, error)
            recorder.end(span, exception=error)
            raise
        recorder.detach(span)
        self.__dict__[PENDING] = span
        return result

    request.__wrapped__ = original  # type: ignore[attr-defined]
    return request


def _traced_getresponse(original: Callable, recorder: Recorder) -> Callable:
    def getresponse(self: object) -> object:
        span: CallSpan | None = self.__dict__.pop(PENDING, None)
        if span is None:
            return original(self)
        try:
            response = original(self)
        except BaseException as error:
            http_semconv.exception_error(span.attributes, error)
            recorder.end_detached(span, exception=error)
            raise
        error_message = http_semconv.response_error(
            span.attributes, getattr(response, "status", None), getattr(response, "version", None)
        )
        recorder.end_detached(span, error=error_message)
        return response

    getresponse.__wrapped__ = original  # type: ignore[attr-defined]
    return getresponse


def _with_trace_headers(span: CallSpan, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    # request(method, url, body=None, headers={}, *, encode_chunked=False)
    headers = args[1] if len(args) >= 2 else kwargs.get("headers", {})
    traceparent, xray = span.traceparent(), span.xray_header()
    if traceparent is None or xray is None or not hasattr(headers, "items"):
        return args, kwargs
    headers = {**dict(headers.items()), "traceparent": traceparent, "X-Amzn-Trace-Id": xray}
    if len(args) >= 2:
        return (args[0], headers, *args[2:]), kwargs
    if not args:
        return args, {**kwargs, "headers": headers}
    return (args[0], headers), kwargs
