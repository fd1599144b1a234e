"""End to end: a function calling S3, DynamoDB, SQS and an HTTP endpoint, run in the sandbox
through the wrapper with ``LAMBDA_WRAPPER_INSTRUMENT=all``, exporting to file, OTLP and X-Ray.

moto serves the AWS APIs, a local server the HTTP calls, ``http_receiver`` takes the
OTLP payloads (parsed with opentelemetry-proto) and a UDP socket plays the X-Ray
daemon (each datagram checked against ``schemas/xray_subsegment.schema.json``). The
function's boto3 is the runtime image's; requests is bundled in its task root.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from call_endpoints import endpoints
from function_runs import FunctionRun, run_function
from http_receiver import Receiver

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "xray_subsegment.schema.json").read_text())
ROOT = "1-5bef4de7-ad49b0e87f6ef6c87fc2e700"
TRACE_HEADER = f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
XRAY_HEADER = b'{"format": "json", "version": 1}\n'

FUNCTION = {
    "app.py": """
        import os

        import boto3
        import requests
        import urllib3

        s3 = boto3.client("s3")
        s3.list_buckets()  # at Init: a child of the init span
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        pool = urllib3.PoolManager(retries=False)
        TARGET = os.environ["HTTP_TARGET"]

        def handler(event, context):
            s3.put_object(Bucket="e2e-bucket", Key="key", Body=b"payload")
            dynamodb.put_item(TableName="e2e", Item={"id": {"S": context.aws_request_id}})
            sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody="hello")
            try:
                s3.get_object(Bucket="e2e-bucket", Key="missing")
            except s3.exceptions.NoSuchKey:
                pass
            requests.get(TARGET + "/ok")
            pool.request("GET", TARGET + "/status/503")
            if event.get("long_url"):
                pool.request("GET", TARGET + "/ok?pad=" + "x" * 70000)
            return {"ok": True}
    """
}


def bundle_requests(task_root: Path) -> None:
    """The function's own copy of requests (the runtime image has urllib3 only, for botocore)."""
    import certifi
    import charset_normalizer
    import idna
    import requests

    for module in (requests, certifi, charset_normalizer, idna):
        source = Path(module.__file__).parent  # type: ignore[arg-type]
        shutil.copytree(source, task_root / source.name, ignore=shutil.ignore_patterns("__pycache__"))


@pytest.fixture()
def xray_daemon() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.settimeout(0.5)
    yield sock
    sock.close()


def datagrams(sock: socket.socket) -> list[bytes]:
    received = []
    while True:
        try:
            received.append(sock.recv(70000))
        except TimeoutError:
            return received


def otlp_spans(receiver: Receiver) -> list[dict[str, Any]]:
    spans = []
    for request in receiver.requests:
        if request.path != "/v1/traces":
            continue
        body = request.body
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        json_format.Parse(body, ExportTraceServiceRequest())  # the protocol's own schema
        for resource in json.loads(body)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                spans.extend(scope["spans"])
    return spans


def run(layer_dir: Path, tmp_path: Path, urls: dict[str, Any], receiver: Receiver, daemon: socket.socket,
        payloads: list[bytes], instrument: str = "all") -> FunctionRun:
    import boto3

    aws = {"endpoint_url": urls["aws"], "region_name": "us-east-1",
           "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", **aws).create_bucket(Bucket="e2e-bucket")
    boto3.client("dynamodb", **aws).create_table(
        TableName="e2e", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    queue_url = boto3.client("sqs", **aws).create_queue(QueueName="e2e")["QueueUrl"]
    task_root = tmp_path / "work" / "task"
    task_root.mkdir(parents=True)
    bundle_requests(task_root)
    env = {
        "LAMBDA_WRAPPER_INSTRUMENT": instrument,
        "LAMBDA_WRAPPER_EXPORTERS": "file,otlp,xray",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url(),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "AWS_ENDPOINT_URL": urls["aws"],
        "HTTP_TARGET": urls["http"],
        "QUEUE_URL": queue_url,
    }
    return run_function(layer_dir, tmp_path / "work", FUNCTION, env=env, payloads=payloads,
                        trace_id=TRACE_HEADER, timeout_s=20)


def test_one_child_span_per_call_in_file_otlp_and_xray(layer_dir: Path, tmp_path: Path,
                                                      xray_daemon: socket.socket) -> None:
    with endpoints() as urls, Receiver() as receiver:
        result = run(layer_dir, tmp_path, urls, receiver, xray_daemon, [b'{"long_url": true}'])
        received = datagrams(xray_daemon)
        seen_by_target = urls["target"].requests
    assert [r.status for r in result.results] == ["success"], result.text()
    request_id = result.results[0].request_id

    # file: one lambda_wrapper.span line per call
    spans = result.records("lambda_wrapper.span")
    invoke = [s for s in spans if s["phase"] == "invoke"]
    assert [s["name"] for s in spans if s["phase"] == "init"] == ["S3.ListBuckets"]
    assert [s["name"] for s in invoke] == [
        "S3.PutObject", "DynamoDB.PutItem", "SQS.SendMessage", "S3.GetObject", "GET", "GET", "GET"
    ]
    assert {s["requestId"] for s in invoke} == {request_id}
    assert [s["instrumentation"] for s in invoke][-3:] == ["requests", "urllib3", "urllib3"]
    assert invoke[3]["attributes"]["http.response.status_code"] == 404 and "error" in invoke[3]
    assert invoke[5]["attributes"]["http.response.status_code"] == 503
    assert all(s["traceHeader"] == TRACE_HEADER for s in invoke)
    # (the server refuses the 70 kB request line before its handler sees it)
    assert len(seen_by_target) == 2 and all("traceparent" not in r["headers"] for r in seen_by_target)

    # OTLP: client spans, children of the invocation span (or of the init span), same trace
    otlp = otlp_spans(receiver)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in otlp:
        by_name.setdefault(span["name"], []).append(span)
    invocation = next(s for s in otlp if s["kind"] == 2)
    init_span = by_name["aws.lambda.init"][0]
    assert invocation["traceId"] == ROOT[2:].replace("-", "")
    clients = [s for s in otlp if s["kind"] == 3]
    assert sorted(s["spanId"] for s in clients) == sorted(s["spanId"] for s in spans)
    for span in clients:
        parent = init_span if span["name"] == "S3.ListBuckets" else invocation
        assert (span["traceId"], span["parentSpanId"]) == (parent["traceId"], parent["spanId"]), span["name"]
    get_missing = next(s for s in clients if s["spanId"] == invoke[3]["spanId"])
    assert get_missing["status"]["code"] == 2
    assert get_missing["events"][0]["name"] == "exception"
    attributes = {a["key"]: a["value"] for a in by_name["DynamoDB.PutItem"][0]["attributes"]}
    assert attributes["rpc.system"] == {"stringValue": "aws-api"}
    assert attributes["aws.dynamodb.table_names"] == {"arrayValue": {"values": [{"stringValue": "e2e"}]}}

    # X-Ray: one subsegment per sampled invocation call, none for Init, the long one dropped
    validator = jsonschema.Draft7Validator(SCHEMA)
    documents = []
    for datagram in received:
        assert datagram.startswith(XRAY_HEADER)
        document = json.loads(datagram[len(XRAY_HEADER):])
        assert not list(validator.iter_errors(document)), document
        documents.append(document)
    assert sorted(d["id"] for d in documents) == sorted(s["spanId"] for s in invoke[:-1])
    assert {(d["trace_id"], d["parent_id"]) for d in documents} == {(ROOT, "53995c3f42cd8ad8")}
    by_id = {d["id"]: d for d in documents}
    put = by_id[invoke[1]["spanId"]]
    assert (put["name"], put["namespace"], put["aws"]["operation"], put["aws"]["table_name"]) == (
        "DynamoDB", "aws", "PutItem", "e2e")
    missing = by_id[invoke[3]["spanId"]]
    assert missing["error"] is True and missing["http"]["response"]["status"] == 404
    assert missing["cause"]["exceptions"][0]["type"] == "botocore.errorfactory.NoSuchKey"
    unavailable = by_id[invoke[5]["spanId"]]
    assert unavailable["fault"] is True and unavailable["namespace"] == "remote"
    assert unavailable["name"] == "127.0.0.1"
    dropped = result.diagnostics("xray_dropped")
    assert [line["tooLarge"] for line in dropped] == [1], result.text()
