"""The ``http`` exporter: every event as JSON, gzipped, POSTed to your endpoint.

Body: ``{"resource": {function metadata}, "events": [event.to_output(), ...]}`` (a
``platform.report`` also carries the invocation's classification under ``invocation``, as
in the file exporter) with
``Content-Encoding: gzip``, one request per export call. Headers come from
``LAMBDA_WRAPPER_HTTP_HEADERS`` and never appear in a message. A 2xx is success;
408, 429 and 5xx are retried later (honouring ``Retry-After``); any other status drops
the events, since sending the same body again would get the same answer.
"""

from __future__ import annotations

from .. import __version__
from ..telemetry import InvocationClassifier
from . import Exporter, FunctionMetadata
from .failures import ExportError
from .transport import Endpoint, Transport, check_status, gzip_body, json_body

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..telemetry import TelemetryEvent


class HttpJsonExporter(Exporter):
    name = "http"
    local = False
    telemetry_types = ("platform", "function", "extension")

    def __init__(
        self,
        endpoint: str,
        headers: Sequence[tuple[str, str]] = (),
        metadata: FunctionMetadata | None = None,
        transport: Transport | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.endpoint = Endpoint(endpoint)
        self._headers = tuple(headers)
        self._secrets = tuple(value for _, value in self._headers)
        resource = (metadata or FunctionMetadata()).as_dict()
        resource["exporter"] = f"lambda-wrapper/{__version__}"
        self._resource = resource
        self._transport = transport or Transport()
        self._timeout_s = timeout_s
        self.last_body_bytes = 0  # compressed size of the last request, for diagnostics
        self._invocations = InvocationClassifier()

    def prepare(self) -> None:
        """Pay TLS setup before the first export (see ``Transport.prepare``)."""
        self._transport.prepare(self.endpoint)

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        if not events:
            return
        output = self._invocations.output
        payload = {"resource": self._resource, "events": [output(event) for event in events]}
        try:
            body = gzip_body(json_body(payload))
        except (TypeError, ValueError, RecursionError) as error:  # a record json cannot encode
            raise ExportError(
                f"http: the batch could not be encoded ({type(error).__name__})", retryable=False
            ) from None
        self.last_body_bytes = len(body)
        response = self._transport.post(
            self.endpoint,
            body,
            "application/json",
            deadline,
            headers=self._headers,
            content_encoding="gzip",
            timeout_s=self._timeout_s,
        )
        check_status(response, self.endpoint, "http", secrets=self._secrets)
