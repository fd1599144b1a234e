"""Downstream calls made the same way under each instrumentation mode, in a process of their own.

``python tests/call_scenarios.py MODE`` reads ``{"aws": URL, "flaky": URL, "http": URL,
"closed": URL}`` on stdin, makes every call of ``SCENARIOS`` and prints one JSON object:
``results`` (each call's outcome, volatile fields removed) and ``spans``. MODE:

- ``bare``: no instrumentation;
- ``ours``: ``lambda_wrapper.instruments.calls`` on every library, spans as our records;
- ``oracle``: OpenTelemetry's botocore, urllib3, requests and urllib instrumentations
  *and* ours, on the same calls, so each call gives one span of each (``spans`` ours,
  ``oracle`` theirs, both in call order).

``--break-botocore`` makes our botocore patch fail (as on a botocore without the method it wraps).
``--propagate`` switches trace propagation on; ``--invocation`` makes the calls inside
an invocation (request id ``request-1``, a sampled X-Ray header), as the supervisor
would, instead of at Init.

Patching is process-wide, so the tests never do it in the pytest process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SPAN_RECORDS: list[Any] = []
TRACE_HEADER = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=53995c3f42cd8ad8;Sampled=1"
VOLATILE_KEYS = {"RequestId", "HTTPHeaders", "date", "x-amzn-requestid", "MessageId", "ReceiptHandle",
                 "LastModified", "CreationDateTime", "ETag", "x-amz-request-id", "x-amz-id-2"}


def start_ours(propagate: bool = False) -> None:
    from lambda_wrapper.instruments import calls
    from lambda_wrapper.variables import INSTRUMENTATIONS

    def submit(event: Any) -> None:
        # As the pipeline's encoder writes it (a value JSON cannot hold becomes its str()).
        SPAN_RECORDS.append(json.loads(json.dumps(event.to_output(), default=str))["record"])

    calls.start(INSTRUMENTATIONS, submit, propagate)


def start_oracle() -> Any:
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    from opentelemetry import trace
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    for instrumentor in (BotocoreInstrumentor, URLLib3Instrumentor, RequestsInstrumentor, URLLibInstrumentor):
        instrumentor().instrument(tracer_provider=provider)
    return exporter


def oracle_span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name.lower(),
        "attributes": {key: list(value) if isinstance(value, tuple) else value
                       for key, value in span.attributes.items()},
        "error": span.status.status_code.name == "ERROR",
        "events": [{"name": event.name, "attributes": dict(event.attributes)} for event in span.events],
    }


def stable(value: Any) -> Any:
    """A call's result without what differs between two runs of the same call."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, (list, tuple)):
        return [stable(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if hasattr(value, "isoformat"):
        return "<time>"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return type(value).__name__


def outcome(call: Any) -> dict[str, Any]:
    try:
        return {"ok": stable(call())}
    except Exception as error:
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(response, dict):
            status = stable(response)
        text = str(error)
        if "0x" in text:  # connection errors name the object's address
            text = text.split(" object at ")[0]
        return {"raised": f"{type(error).__module__}.{type(error).__qualname__}", "message": text,
                "response": status}


def scenarios(urls: dict[str, str]) -> list[tuple[str, Any]]:
    import boto3
    import botocore.config
    import requests
    import urllib3

    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                   "region_name": "us-east-1"}
    no_retries = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
    s3 = boto3.client("s3", endpoint_url=urls["aws"], config=no_retries, **credentials)
    dynamodb = boto3.client("dynamodb", endpoint_url=urls["aws"], config=no_retries, **credentials)
    sqs = boto3.client("sqs", endpoint_url=urls["aws"], config=no_retries, **credentials)
    retrying = boto3.client("dynamodb", endpoint_url=urls["flaky"], **credentials,
                            config=botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}))
    pool = urllib3.PoolManager(retries=False)
    http, closed = urls["http"], urls["closed"]
    table = {"TableName": "calls", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
             "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
             "BillingMode": "PAY_PER_REQUEST"}

    def queue_url() -> str:
        return str(sqs.get_queue_url(QueueName="calls")["QueueUrl"])

    def read(response: Any) -> dict[str, Any]:
        return {"status": response.status, "body": response.read()}

    import urllib.request

    return [
        ("s3 create bucket", lambda: s3.create_bucket(Bucket="calls-bucket")),
        ("s3 put object", lambda: s3.put_object(Bucket="calls-bucket", Key="k", Body=b"payload")),
        ("s3 get object", lambda: s3.get_object(Bucket="calls-bucket", Key="k")["Body"].read()),
        ("s3 missing key", lambda: s3.get_object(Bucket="calls-bucket", Key="missing")),
        ("dynamodb create table", lambda: dynamodb.create_table(**table)["TableDescription"]["TableName"]),
        ("dynamodb put item", lambda: dynamodb.put_item(TableName="calls", Item={"id": {"S": "1"}})),
        ("dynamodb get item", lambda: dynamodb.get_item(TableName="calls", Key={"id": {"S": "1"}})),
        ("dynamodb missing table", lambda: dynamodb.get_item(TableName="absent", Key={"id": {"S": "1"}})),
        ("sqs create queue", lambda: sqs.create_queue(QueueName="calls")),
        ("sqs send", lambda: sqs.send_message(QueueUrl=queue_url(), MessageBody="hello")),
        ("sqs receive", lambda: sqs.receive_message(QueueUrl=queue_url())["Messages"][0]["Body"]),
        ("dynamodb retried", lambda: retrying.list_tables()),
        ("urllib3 ok", lambda: read(pool.request("GET", f"{http}/ok?x=1"))),
        ("urllib3 500", lambda: read(pool.request("GET", f"{http}/status/500"))),
        ("urllib3 refused", lambda: pool.request("GET", f"{closed}/ok")),
        ("requests ok", lambda: requests.get(f"{http}/ok").text),
        ("requests post 404", lambda: requests.post(f"{http}/status/404", data=b"body").status_code),
        ("requests credentials", lambda: requests.get(
            http.replace("://", "://user:secret@") + "/ok?Signature=s3cr3t&X-Amz-Security-Token=t0k&a=1"
        ).text),
        ("requests refused", lambda: requests.get(f"{closed}/ok")),
        ("urllib ok", lambda: read(urllib.request.urlopen(f"{http}/ok"))),
        ("urllib 404", lambda: read(urllib.request.urlopen(f"{http}/status/404"))),
    ]


def main() -> None:
    mode = sys.argv[1]
    urls = json.loads(sys.stdin.read())
    oracle = None
    if mode == "oracle":
        oracle = start_oracle()
    if "--break-botocore" in sys.argv and mode != "bare":
        # A botocore whose client no longer has the method we wrap.
        from lambda_wrapper.instruments.calls import patches

        def broken(recorder: object) -> None:
            raise AttributeError("type object 'BaseClient' has no attribute '_make_api_call'")

        patches.patch_botocore = broken
    if mode in ("ours", "oracle"):
        start_ours(propagate="--propagate" in sys.argv)
    if "--invocation" in sys.argv:
        from lambda_wrapper.instruments import CURRENT

        os.environ["_X_AMZN_TRACE_ID"] = TRACE_HEADER
        CURRENT.invocation_starts("request-1", True)
    results = {name: outcome(call) for name, call in scenarios(urls)}
    output: dict[str, Any] = {"results": results, "spans": SPAN_RECORDS}
    if oracle is not None:
        output["oracle"] = [oracle_span(span) for span in oracle.get_finished_spans()]
    print(json.dumps(output, default=repr))


if __name__ == "__main__":
    main()
