"""atheris target: bytes off the wire, through the decoder, into every exporter's encoder.

``decode_batch`` may only raise ``UnreadableBatch``; whatever it decodes, the EMF and
OTLP exporters must encode without raising. Run as
``python -m faults.fuzz_decode [corpus_dir] -runs=N`` (seed the corpus with
``faults.telemetry_inputs.write_corpus``); atheris exits the process when done.
"""

from __future__ import annotations

import io
import sys
import time
from typing import Any

import atheris

with atheris.instrument_imports():
    from lambda_wrapper.export import FunctionMetadata
    from lambda_wrapper.export.emf import EmfExporter
    from lambda_wrapper.export.otlp import OtlpExporter, SignalTarget
    from lambda_wrapper.export.transport import Endpoint, HttpResponse, Transport
    from lambda_wrapper.log_lines import decode_batch, is_own_diagnostic
    from lambda_wrapper.malformed import UnreadableBatch
    from lambda_wrapper.telemetry import decode_platform_events, parse_batch

ENVIRON = {
    "AWS_LAMBDA_FUNCTION_NAME": "fuzzed",
    "AWS_LAMBDA_FUNCTION_VERSION": "1",
    "AWS_REGION": "eu-west-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
}


class AcceptingTransport(Transport):
    """Answers 200 without a network: the encoders are under test, not the wire."""

    def post(
        self, endpoint: Endpoint, body: bytes, content_type: str, deadline: float, **kwargs: Any
    ) -> HttpResponse:
        return HttpResponse(200, {}, b"{}")


class Discard(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


metadata = FunctionMetadata(ENVIRON)
emf = EmfExporter("Fuzz", ("FunctionName", "ColdStart"), stream=Discard(), metadata=metadata, environ=ENVIRON)
otlp = OtlpExporter(
    {signal: SignalTarget(f"http://collector/v1/{signal}") for signal in ("logs", "metrics", "traces")},
    metadata,
    transport=AcceptingTransport(),
)


def one_input(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except UnreadableBatch:
        return
    # The defaults' decoder too (EMF reads platform records only).
    emf.export(decode_platform_events(parse_batch(data)).events, time.monotonic() + 5)
    for event in batch.events:
        event.to_output()
        is_own_diagnostic(event, {"LambdaWrapper"})
    deadline = time.monotonic() + 5
    emf.export(batch.events, deadline)
    otlp.export(batch.events, deadline)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
