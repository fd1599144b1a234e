"""Sending one telemetry batch to a subscriber's listener.

HTTP destinations get a ``POST`` (``PUT`` if a Logs API subscriber asked for it)
of a JSON array, with the ``Sequence-Id`` header RAPID's Telemetry API sends.
TCP destinations get newline-delimited JSON on a connection kept between batches.
Events arrive already serialised (the bus encodes each one once, when it is
buffered), so building a body is a join, not a second ``json.dumps``.
Sockets are non-blocking and the timeout is measured on the ``FreezeClock``: a
listener that is frozen together with the function is waiting, not failing.
"""

from __future__ import annotations

import base64
import hashlib
import select
import socket
from collections.abc import Callable

from .subscription_rules import Destination

SEND_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0


class DeliveryFailed(Exception):
    pass


class BatchSender:
    """Delivers batches to one destination; not thread-safe (one per subscriber)."""

    def __init__(self, destination: Destination, active_clock: Callable[[], float]) -> None:
        self.destination = destination
        self._clock = active_clock
        self._tcp: socket.socket | None = None

    def send(self, events: list[bytes], reached: Callable[[], None] = lambda: None) -> None:
        """Deliver one batch of JSON-encoded events; ``reached`` is called once the
        listener can see the request (connected, body built), before any of it is sent."""
        if self.destination.protocol == "TCP":
            self._send_tcp(events, reached)
        else:
            self._send_http(b"[" + b",".join(events) + b"]", reached)

    def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None

    def _send_http(self, body: bytes, reached: Callable[[], None]) -> None:
        dest = self.destination
        sequence_id = base64.b64encode(hashlib.sha256(body).digest()).decode()
        head = (
            f"{dest.method} {dest.path} HTTP/1.1\r\nHost: sandbox.localdomain:{dest.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Sequence-Id: {sequence_id}\r\nConnection: close\r\n\r\n"
        ).encode()
        deadline = self._clock() + SEND_TIMEOUT_S
        with self._connect() as sock:
            reached()
            self._send_all(sock, head + body, deadline)
            status = self._read_status(sock, deadline)
        if not 200 <= status < 300:
            raise DeliveryFailed(f"listener answered HTTP {status}")

    def _send_tcp(self, events: list[bytes], reached: Callable[[], None]) -> None:
        payload = b"\n".join(events) + b"\n"
        if self._tcp is None:
            self._tcp = self._connect()
        reached()
        try:
            self._send_all(self._tcp, payload, self._clock() + SEND_TIMEOUT_S)
        except (OSError, DeliveryFailed):
            self.close()
            raise

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection(("127.0.0.1", self.destination.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as error:
            raise DeliveryFailed(str(error)) from error
        sock.setblocking(False)
        return sock

    def _wait(self, sock: socket.socket, writing: bool, deadline: float) -> None:
        while True:
            readable, writable, _ = select.select(
                [] if writing else [sock], [sock] if writing else [], [], 0.05
            )
            if readable or writable:
                return
            if self._clock() > deadline:
                raise DeliveryFailed("timed out waiting for the listener")

    def _send_all(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(sock, True, deadline)
            try:
                sent = sock.send(view)
            except BlockingIOError:
                continue
            except OSError as error:
                raise DeliveryFailed(str(error)) from error
            view = view[sent:]

    def _read_status(self, sock: socket.socket, deadline: float) -> int:
        """Read the whole answer (so the listener never writes into a closed socket)."""
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self._recv(sock, deadline)
            if not chunk:
                raise DeliveryFailed("listener closed the connection without answering")
            received += chunk
        head, body = received.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status_line = lines[0].split()
        try:
            status = int(status_line[1])
        except (IndexError, ValueError) as error:
            raise DeliveryFailed(f"malformed answer {status_line!r}") from error
        headers = {
            key.strip().lower(): value.strip()
            for key, _, value in (line.partition(b":") for line in lines[1:])
        }
        if b"content-length" in headers:
            missing = int(headers[b"content-length"] or 0) - len(body)
            while missing > 0:
                chunk = self._recv(sock, deadline)
                if not chunk:
                    break
                missing -= len(chunk)
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while not body.endswith(b"0\r\n\r\n"):
                chunk = self._recv(sock, deadline)
                if not chunk:
                    break
                body += chunk
        return status

    def _recv(self, sock: socket.socket, deadline: float) -> bytes:
        while True:
            self._wait(sock, False, deadline)
            try:
                return sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as error:
                raise DeliveryFailed(str(error)) from error
