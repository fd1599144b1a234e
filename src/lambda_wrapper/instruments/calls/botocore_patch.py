"""botocore: one span per AWS API call (``BaseClient._make_api_call``), retries included.

Name ``<service id>.<operation>`` (``S3.GetObject``); attributes as OpenTelemetry's
botocore instrumentation records them: ``rpc.system`` = ``aws-api``, ``rpc.service``,
``rpc.method``, ``cloud.region``, ``server.address``, ``server.port``,
``aws.request_id``, ``retry_attempts``, and per service ``aws.dynamodb.table_names``
(with ``db.system``, ``db.operation``), the SQS queue (``aws.queue_url``,
``messaging.*``) and, from the semantic conventions, ``aws.s3.bucket``. The HTTP status
is ``http.response.status_code``, the stable name our HTTP spans use too. An error
response (a ``ClientError``) or any other exception sets the span's error.

With propagation on, ``traceparent`` is added in ``Endpoint.prepare_request``, after
botocore signed the request, so SigV4 signatures stay valid; botocore adds
``X-Amzn-Trace-Id`` itself (from ``_X_AMZN_TRACE_ID``).
"""

from __future__ import annotations

import sys

from .spans import server_attributes

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from .spans import Recorder

REQUEST_ID_HEADERS = ("x-amzn-RequestId", "x-amz-request-id", "x-amz-id-2")
_SERVER_BY_ENDPOINT: dict[str, dict[str, object]] = {}
_MAX_ENDPOINTS = 64


def patch(recorder: Recorder) -> None:
    client_module = sys.modules["botocore.client"]
    exceptions = sys.modules["botocore.exceptions"]
    base_client = client_module.BaseClient
    base_client._make_api_call = _traced_api_call(
        base_client._make_api_call, recorder, exceptions.ClientError
    )
    if recorder.propagate:
        endpoint_class = sys.modules["botocore.endpoint"].Endpoint
        endpoint_class.prepare_request = _propagating_prepare_request(
            endpoint_class.prepare_request, recorder
        )


def _traced_api_call(original: Callable, recorder: Recorder, client_error: type[BaseException]) -> Callable:
    def _make_api_call(self: object, operation_name: str, api_params: dict) -> object:
        span = None
        try:
            span = recorder.start(*_call_start(self, operation_name, api_params))
        except Exception:  # a client we cannot read is called untraced
            span = None
        if span is None:
            return original(self, operation_name, api_params)
        try:
            result = original(self, operation_name, api_params)
        except client_error as error:
            response = getattr(error, "response", None)
            status = _apply_response(span.attributes, response, operation_name)
            recorder.end(span, error=str(error) if status is None or status >= 400 else None, exception=error)
            raise
        except BaseException as error:
            recorder.end(span, error=str(error), exception=error)
            raise
        _apply_response(span.attributes, result, operation_name)
        recorder.end(span)
        return result

    _make_api_call.__wrapped__ = original  # type: ignore[attr-defined]
    return _make_api_call


def _call_start(client: object, operation: str, params: dict) -> tuple[str, str, dict[str, object]]:
    meta = client.meta  # type: ignore[attr-defined]
    service_id = str(meta.service_model.service_id)
    attributes: dict[str, object] = {
        "rpc.system": "aws-api",
        "rpc.service": service_id,
        "rpc.method": operation,
        "cloud.region": meta.region_name,
    }
    attributes.update(_server(meta.endpoint_url))
    if isinstance(params, dict):
        if service_id == "DynamoDB":
            attributes["db.system"] = "dynamodb"
            attributes["db.operation"] = operation
            tables = _dynamodb_tables(params)
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


def _server(endpoint_url: str | None) -> dict[str, object]:
    if not endpoint_url:
        return {}
    known = _SERVER_BY_ENDPOINT.get(endpoint_url)
    if known is None:
        from urllib.parse import urlparse  # botocore imported it already

        parsed = urlparse(endpoint_url)
        known = server_attributes(parsed.hostname, parsed.port, 443)
        if len(_SERVER_BY_ENDPOINT) >= _MAX_ENDPOINTS:
            _SERVER_BY_ENDPOINT.clear()
        _SERVER_BY_ENDPOINT[endpoint_url] = known
    return known


def _dynamodb_tables(params: dict) -> tuple[str, ...] | None:
    table = params.get("TableName")
    if isinstance(table, str):
        return (table,)
    items = params.get("RequestItems")
    if isinstance(items, dict) and items:
        return tuple(str(name) for name in items)
    return None


def _apply_response(attributes: dict[str, object], response: object, operation: str) -> int | None:
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
        message_id = _sqs_message_id(response, operation)
        if message_id is not None:
            attributes["messaging.message.id"] = message_id
    return status if isinstance(status, int) else None


def _sqs_message_id(response: dict, operation: str) -> object:
    """The (first) message's id, as OpenTelemetry's SQS extension records it."""
    if operation == "SendMessage":
        return response.get("MessageId")
    listed = response.get("Successful" if operation == "SendMessageBatch" else "Messages")
    if operation in ("SendMessageBatch", "ReceiveMessage") and isinstance(listed, list) and listed:
        first = listed[0]
        return first.get("MessageId") if isinstance(first, dict) else None
    return None


def _propagating_prepare_request(original: Callable, recorder: Recorder) -> Callable:
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
