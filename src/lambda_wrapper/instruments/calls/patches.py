"""The patches: one function per library, ``patch_<library>(recorder)``, each wrapping
the library's call so that it records one span per call through ``spans``.

One module for every library, loaded when the first instrumented library is imported:
on the cold path each module costs its own load, whatever it holds.
"""

from __future__ import annotations

import sys

from . import spans

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from .spans import CallSpan, Recorder


# == botocore ==============================================================================
# botocore: one span per AWS API call (``BaseClient._make_api_call``), retries included.
#
# Name ``<service id>.<operation>`` (``S3.GetObject``); attributes as OpenTelemetry's
# botocore instrumentation records them: ``rpc.system`` = ``aws-api``, ``rpc.service``,
# ``rpc.method``, ``cloud.region``, ``server.address``, ``server.port``,
# ``aws.request_id``, ``retry_attempts``, and per service ``aws.dynamodb.table_names``
# (with ``db.system``, ``db.operation``), the SQS queue (``aws.queue_url``,
# ``messaging.*``) and, from the semantic conventions, ``aws.s3.bucket``. The HTTP status
# is ``http.response.status_code``, the stable name our HTTP spans use too. An error
# response (a ``ClientError``) or any other exception sets the span's error.
#
# With propagation on, ``traceparent`` is added in ``Endpoint.prepare_request``, after
# botocore signed the request, so SigV4 signatures stay valid; botocore adds
# ``X-Amzn-Trace-Id`` itself (from ``_X_AMZN_TRACE_ID``).


REQUEST_ID_HEADERS = ("x-amzn-RequestId", "x-amz-request-id", "x-amz-id-2")
_SERVER_BY_ENDPOINT: dict[str, dict[str, object]] = {}
_MAX_ENDPOINTS = 64


def patch_botocore(recorder: Recorder) -> None:
    client_module = sys.modules["botocore.client"]
    exceptions = sys.modules["botocore.exceptions"]
    base_client = client_module.BaseClient
    base_client._make_api_call = _botocore_traced_api_call(
        base_client._make_api_call, recorder, exceptions.ClientError
    )
    if recorder.propagate:
        endpoint_class = sys.modules["botocore.endpoint"].Endpoint
        endpoint_class.prepare_request = _botocore_propagating_prepare_request(
            endpoint_class.prepare_request, recorder
        )


def _botocore_traced_api_call(
    original: Callable, recorder: Recorder, client_error: type[BaseException]
) -> Callable:
    def _make_api_call(self: object, operation_name: str, api_params: dict) -> object:
        span = None
        try:
            span = recorder.start(*_botocore_call_start(self, operation_name, api_params))
        except Exception:  # a client we cannot read is called untraced
            span = None
        if span is None:
            return original(self, operation_name, api_params)
        try:
            result = original(self, operation_name, api_params)
        except client_error as error:
            response = getattr(error, "response", None)
            status = _botocore_apply_response(span.attributes, response, operation_name)
            recorder.end(span, error=str(error) if status is None or status >= 400 else None, exception=error)
            raise
        except BaseException as error:
            recorder.end(span, error=str(error), exception=error)
            raise
        _botocore_apply_response(span.attributes, result, operation_name)
        recorder.end(span)
        return result

    _make_api_call.__wrapped__ = original  # type: ignore[attr-defined]
    return _make_api_call


def _botocore_call_start(client: object, operation: str, params: dict) -> tuple[str, str, dict[str, object]]:
    meta = client.meta  # type: ignore[attr-defined]
    service_id = str(meta.service_model.service_id)
    attributes: dict[str, object] = {
        "rpc.system": "aws-api",
        "rpc.service": service_id,
        "rpc.method": operation,
        "cloud.region": meta.region_name,
    }
    attributes.update(_botocore_server(meta.endpoint_url))
    if isinstance(params, dict):
        if service_id == "DynamoDB":
            attributes["db.system"] = "dynamodb"
            attributes["db.operation"] = operation
            tables = _botocore_dynamodb_tables(params)
            if tables:
                attributes["aws.dynamodb.table_names"] = tables
        elif service_id == "SQS":
            queue_url = params.get("QueueUrl")
            if isinstance(queue_url, str) and queue_url:
                attributes["aws.queue_url"] = queue_url
                attributes["messaging.system"] = "aws.sqs"
                attributes["messaging.url"] = queue_url
                attributes["messaging.destination"] = queue_url.split("/")[-1]
        elif service_id == "S3":
            bucket = params.get("Bucket")
            if isinstance(bucket, str):
                attributes["aws.s3.bucket"] = bucket
    return f"{service_id}.{operation}", "botocore", attributes


def _botocore_server(endpoint_url: str | None) -> dict[str, object]:
    if not endpoint_url:
        return {}
    known = _SERVER_BY_ENDPOINT.get(endpoint_url)
    if known is None:
        from urllib.parse import urlparse  # botocore imported it already

        parsed = urlparse(endpoint_url)
        known = spans.server_attributes(parsed.hostname, parsed.port, 443)
        if len(_SERVER_BY_ENDPOINT) >= _MAX_ENDPOINTS:
            _SERVER_BY_ENDPOINT.clear()
        _SERVER_BY_ENDPOINT[endpoint_url] = known
    return known


def _botocore_dynamodb_tables(params: dict) -> tuple[str, ...] | None:
    table = params.get("TableName")
    if isinstance(table, str):
        return (table,)
    items = params.get("RequestItems")
    if isinstance(items, dict) and items:
        return tuple(str(name) for name in items)
    return None


def _botocore_apply_response(attributes: dict[str, object], response: object, operation: str) -> int | None:
    """Request id, retries and status from the response's metadata; returns the status."""
    if not isinstance(response, dict):
        return None
    metadata = response.get("ResponseMetadata")
    if not isinstance(metadata, dict):
        return None
    request_id = metadata.get("RequestId")
    if request_id is None:
        headers = metadata.get("HTTPHeaders")
        if isinstance(headers, dict):
            request_id = next(
                (headers[name] for name in REQUEST_ID_HEADERS if headers.get(name)), None
            )
    if request_id:
        attributes["aws.request_id"] = request_id
    retries = metadata.get("RetryAttempts")
    if retries is not None:
        attributes["retry_attempts"] = retries
    status = metadata.get("HTTPStatusCode")
    if status is not None:
        attributes["http.response.status_code"] = status
    if attributes.get("messaging.system") == "aws.sqs":
        message_id = _botocore_sqs_message_id(response, operation)
        if message_id is not None:
            attributes["messaging.message.id"] = message_id
    return status if isinstance(status, int) else None


def _botocore_sqs_message_id(response: dict, operation: str) -> object:
    """The (first) message's id, as OpenTelemetry's SQS extension records it."""
    if operation == "SendMessage":
        return response.get("MessageId")
    listed = response.get("Successful" if operation == "SendMessageBatch" else "Messages")
    if operation in ("SendMessageBatch", "ReceiveMessage") and isinstance(listed, list) and listed:
        first = listed[0]
        return first.get("MessageId") if isinstance(first, dict) else None
    return None


def _botocore_propagating_prepare_request(original: Callable, recorder: Recorder) -> Callable:
    def prepare_request(self: object, request: object) -> object:
        span = recorder.current()
        if span is not None:
            try:
                traceparent = span.traceparent()
                if traceparent is not None:
                    request.headers["traceparent"] = traceparent  # type: ignore[attr-defined]
            except Exception:  # the request goes out as it would without us
                pass
        return original(self, request)

    prepare_request.__wrapped__ = original  # type: ignore[attr-defined]
    return prepare_request


# == urllib3 ===============================================================================
# urllib3: one span per ``HTTPConnectionPool.urlopen``, its retries and redirects within it.
#
# Attributes: the HTTP conventions of ``spans``. With propagation on, the request carries ``traceparent``
# and ``X-Amzn-Trace-Id`` naming this span (the caller's headers are copied, never changed).


def patch_urllib3(recorder: Recorder) -> None:
    pool_class = sys.modules["urllib3.connectionpool"].HTTPConnectionPool
    pool_class.urlopen = _urllib3_traced_urlopen(pool_class.urlopen, recorder)


def _urllib3_traced_urlopen(original: Callable, recorder: Recorder) -> Callable:
    def urlopen(self: object, method: str, url: str, *args: object, **kwargs: object) -> object:
        span = None
        try:
            if recorder.current() is None:
                scheme = getattr(self, "scheme", "http") or "http"
                host, port = self.host, self.port  # type: ignore[attr-defined]
                full_url = spans.host_url(scheme, host, port, url)
                span = recorder.start(*_urllib3_start(method, full_url, host, port, scheme))
                if span is not None and recorder.propagate:
                    args, kwargs = _urllib3_with_trace_headers(self, span, args, kwargs)
        except Exception:  # an unusual call goes out untraced
            span = None
        if span is None:
            return original(self, method, url, *args, **kwargs)
        try:
            response = original(self, method, url, *args, **kwargs)
        except BaseException as error:
            spans.exception_error(span.attributes, error)
            recorder.end(span, exception=error)
            raise
        error_message = spans.response_error(
            span.attributes, getattr(response, "status", None), getattr(response, "version", None)
        )
        recorder.end(span, error=error_message)
        return response

    urlopen.__wrapped__ = original  # type: ignore[attr-defined]
    return urlopen


def _urllib3_start(
    method: str, url: str, host: str, port: int | None, scheme: str
) -> tuple[str, str, dict[str, object]]:
    name, attributes = spans.request_attributes(method, url, host, port, scheme)
    return name, "urllib3", attributes


def _urllib3_with_trace_headers(pool: object, span: object, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
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


# == requests ==============================================================================
# requests: one span per ``Session.send`` (retries and redirects of one send within it).
#
# Attributes: the HTTP conventions of ``spans``. With propagation on, the prepared request carries
# ``traceparent`` and ``X-Amzn-Trace-Id`` naming this span.


def patch_requests(recorder: Recorder) -> None:
    session_class = sys.modules["requests.sessions"].Session
    session_class.send = _requests_traced_send(session_class.send, recorder)


def _requests_traced_send(original: Callable, recorder: Recorder) -> Callable:
    def send(self: object, request: object, **kwargs: object) -> object:
        span = None
        try:
            if recorder.current() is None:
                span = recorder.start(*_requests_start(request))
                if span is not None and recorder.propagate:
                    _requests_add_trace_headers(request, span)
        except Exception:  # an unusual request goes out untraced
            span = None
        if span is None:
            return original(self, request, **kwargs)
        try:
            response = original(self, request, **kwargs)
        except BaseException as error:
            failed = getattr(error, "response", None)
            if failed is not None:
                _requests_response(span.attributes, failed)
            spans.exception_error(span.attributes, error)
            recorder.end(span, exception=error)
            raise
        recorder.end(span, error=_requests_response(span.attributes, response))
        return response

    send.__wrapped__ = original  # type: ignore[attr-defined]
    return send


def _requests_start(request: object) -> tuple[str, str, dict[str, object]]:
    from urllib.parse import urlsplit  # requests imported it already

    url = str(request.url)  # type: ignore[attr-defined]
    parts = urlsplit(url)
    name, attributes = spans.request_attributes(
        str(request.method), url, parts.hostname, parts.port, parts.scheme  # type: ignore[attr-defined]
    )
    return name, "requests", attributes


def _requests_response(attributes: dict[str, object], response: object) -> str | None:
    raw = getattr(response, "raw", None)
    return spans.response_error(
        attributes, getattr(response, "status_code", None), getattr(raw, "version", None)
    )


def _requests_add_trace_headers(request: object, span: object) -> None:
    traceparent = span.traceparent()  # type: ignore[attr-defined]
    xray = span.xray_header()  # type: ignore[attr-defined]
    headers = getattr(request, "headers", None)
    if traceparent is None or xray is None or headers is None:
        return
    headers["traceparent"] = traceparent
    headers["X-Amzn-Trace-Id"] = xray


# == http_client ===========================================================================
# http.client: one span per request, from ``HTTPConnection.request`` to ``getresponse``.
#
# This is the path of ``urllib.request`` and of code that uses http.client directly
# (urllib3 sends through its own ``request`` and is its own instrumentation). The span
# waits on the connection between the two calls, not on the thread, so a request whose
# response is never read does not hide the thread's later calls; it ends, without a
# status, when the connection sends its next request. Attributes: the HTTP conventions of ``spans``.
# With propagation on, the request carries ``traceparent`` and ``X-Amzn-Trace-Id``
# (the caller's headers are copied, never changed).


PENDING = "_lambda_wrapper_span"  # the connection's span between request and getresponse


def patch_http_client(recorder: Recorder) -> None:
    connection_class = sys.modules["http.client"].HTTPConnection
    connection_class.request = _http_client_traced_request(connection_class.request, recorder)
    connection_class.getresponse = _http_client_traced_getresponse(connection_class.getresponse, recorder)


def _http_client_traced_request(original: Callable, recorder: Recorder) -> Callable:
    def request(self: object, method: str, url: str, *args: object, **kwargs: object) -> object:
        span = None
        try:
            earlier: CallSpan | None = self.__dict__.pop(PENDING, None)
            if earlier is not None:
                recorder.end_detached(earlier)
            if recorder.current() is None:
                scheme = "https" if getattr(self, "default_port", 80) == 443 else "http"
                host, port = self.host, self.port  # type: ignore[attr-defined]
                name, attributes = spans.request_attributes(
                    method, spans.host_url(scheme, host, port, url), host, port, scheme
                )
                span = recorder.start(name, "http.client", attributes)
                if span is not None and recorder.propagate:
                    args, kwargs = _http_client_with_trace_headers(span, args, kwargs)
        except Exception:  # an unusual call goes out untraced
            span = None
        if span is None:
            return original(self, method, url, *args, **kwargs)
        try:
            result = original(self, method, url, *args, **kwargs)
        except BaseException as error:
            spans.exception_error(span.attributes, error)
            recorder.end(span, exception=error)
            raise
        recorder.detach(span)
        self.__dict__[PENDING] = span
        return result

    request.__wrapped__ = original  # type: ignore[attr-defined]
    return request


def _http_client_traced_getresponse(original: Callable, recorder: Recorder) -> Callable:
    def getresponse(self: object) -> object:
        span: CallSpan | None = self.__dict__.pop(PENDING, None)
        if span is None:
            return original(self)
        try:
            response = original(self)
        except BaseException as error:
            spans.exception_error(span.attributes, error)
            recorder.end_detached(span, exception=error)
            raise
        error_message = spans.response_error(
            span.attributes, getattr(response, "status", None), getattr(response, "version", None)
        )
        recorder.end_detached(span, error=error_message)
        return response

    getresponse.__wrapped__ = original  # type: ignore[attr-defined]
    return getresponse


def _http_client_with_trace_headers(span: CallSpan, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
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
