"""The keep-alive client of the loopback platform APIs (Extensions, Telemetry).

The wire format and the connection are ``lambda_wrapper.http11``'s; this adds what the
platform APIs need of a client: one persistent connection per thread to the
``host:port`` of ``AWS_LAMBDA_RUNTIME_API``, no deadline unless one is asked for (the
``/event/next`` long-poll blocks across freezes), and one resend on a fresh connection
when a kept-alive one turns out dead before any response byte.
"""

from __future__ import annotations

import time

from ..http11 import Connection, HttpError, HttpResponse, NoResponse, encode_request

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HttpConnection", "HttpError", "HttpResponse"]

MAX_BODY_BYTES = 16 * 1024 * 1024


class HttpConnection:
    """One persistent connection to ``host:port``; not thread-safe (one per thread)."""

    def __init__(self, address: str, timeout: float | None = None) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {address!r}")
        self.host = host.strip("[]")
        self.port = int(port)
        self.host_header = f"{host}:{port}"
        self.timeout = timeout
        self._connection: Connection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"", timeout: float | None = None,
                while_waiting: Callable[[int], None] | None = None) -> HttpResponse:
        """Send one request and read its response; raises ``HttpError`` (an ``OSError``).

        ``timeout`` (else the connection's) bounds the whole exchange; with neither it
        blocks as long as the platform takes. ``while_waiting(fd)``, if given, runs
        between the send and the first read and must return once ``fd`` is readable.
        A request that got any response bytes is never resent.
        """
        message = encode_request(method, path, self.host_header, (headers or {}).items(), body)
        limit = self.timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        for attempt in (1, 2):
            fresh = self._connection is None
            if self._connection is None:
                self._connection = Connection.open(self.host, self.port, deadline, label=self.host_header)
            try:
                response, reusable = self._connection.exchange(
                    message, deadline, method=method, max_body_bytes=MAX_BODY_BYTES,
                    while_waiting=while_waiting,
                )
            except NoResponse:
                self.close()
                if fresh or attempt == 2:
                    raise
                continue  # a kept-alive connection the peer closed while we were idle or frozen
            except BaseException:
                self.close()
                raise
            if not reusable:
                self.close()
            if not response.complete:
                raise HttpError(f"{self.host_header} sent a response body over {MAX_BODY_BYTES} bytes", False)
            return response
        raise AssertionError("unreachable")
