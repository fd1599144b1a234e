"""The one HTTP/1.1 module: message heads, response framing, and the platform client.

The exporters' side (deadlines, TLS, DNS, secrets) is in test_export_transport.py and
the listener's hostile input in test_listener.py; here are the framing rules all three
share and what the platform client adds (no deadline, the resend on a dead kept-alive
connection), against real sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lambda_wrapper.extension import (
    Connection,
    HttpConnection,
    HttpError,
    MalformedMessage,
    NoResponse,
    PlatformEvent,
    encode_request,
    parse_content_length,
    parse_request_head,
    parse_response_head,
    register,
)


def test_request_heads() -> None:
    method, target, headers = parse_request_head(
        b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 7\r\nX-A: 1\r\nx-a: 2"
    )
    assert (method, target) == ("POST", "/x?y=1")
    assert headers == {"host": "a", "content-length": "7", "x-a": "1, 2"}
    for bad in (b"\x16\x03\x01\x00garbage", b"POST / HTTP/2", b"POST  HTTP/1.1", b"GET /\r\nHost: a"):
        with pytest.raises(MalformedMessage):
            parse_request_head(bad)


def test_response_heads() -> None:
    assert parse_response_head(b"HTTP/1.0 204 No Content\r\nA: b") == (204, "HTTP/1.0", {"a": "b"})
    assert parse_response_head(b"HTTP/1.1 200")[0] == 200
    for bad in (b"SSH-2.0-OpenSSH_9.6", b"HTTP/1.1 20 OK", b"HTTP/1.1 abc OK", b"HTTP/2 200 OK"):
        with pytest.raises(MalformedMessage):
            parse_response_head(bad)


def test_content_length_values() -> None:
    assert parse_content_length("12") == 12
    assert parse_content_length("12, 12") == 12  # a repeated field with the same value
    # "\u00b2" (superscript two) passes str.isdigit but not int: malformed all the same.
    for bad in ("", "-1", "1e3", "12, 13", "0x10", "\u00b2", "\u00b2, \u00b2"):
        with pytest.raises(MalformedMessage):
            parse_content_length(bad)


def test_request_encoding() -> None:
    get = encode_request("GET", "/next", "h:1", [("A", "b")], b"")
    assert get == b"GET /next HTTP/1.1\r\nHost: h:1\r\nA: b\r\n\r\n"
    assert encode_request("PUT", "/t", "h:1", [], b"").endswith(b"Content-Length: 0\r\n\r\n")
    post = encode_request("POST", "/", "h", [], b"abc")
    assert post == b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    with pytest.raises(UnicodeEncodeError):
        encode_request("POST", "/", "h", [("A", "\u20ac")], b"")


# -- against a real socket ---------------------------------------------------------------


@contextlib.contextmanager
def scripted_server(answer: Callable[[socket.socket, int], None]) -> Iterator[int]:
    """A loopback server running ``answer(connection, index)`` for each connection."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        for index in range(100):
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)
            threading.Thread(target=lambda c=connection, i=index: _quietly(answer, c, i), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for connection in accepted:
            connection.close()


def _quietly(answer: Callable[[socket.socket, int], None], connection: socket.socket, index: int) -> None:
    with contextlib.suppress(OSError):
        answer(connection, index)


def read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def exchange_with(
    reply: bytes, method: str = "POST", max_body_bytes: int = 1024
) -> tuple[int, bytes, bool, bool]:
    def answer(connection: socket.socket, index: int) -> None:
        read_request(connection)
        connection.sendall(reply)
        if b"Content-Length" not in reply and b"chunked" not in reply:
            connection.close()  # a to-close body ends with the connection
        else:
            time.sleep(0.5)

    with scripted_server(answer) as port:
        connection = Connection.open("127.0.0.1", port, time.monotonic() + 2)
        try:
            request = encode_request(method, "/", f"127.0.0.1:{port}", [], b"x" if method == "POST" else b"")
            response, reusable = connection.exchange(
                request, time.monotonic() + 2, method=method, max_body_bytes=max_body_bytes
            )
        finally:
            connection.close()
    return response.status, response.body, response.complete, reusable


OK = b"HTTP/1.1 200 OK\r\n"


def test_response_framing() -> None:
    assert exchange_with(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") == (200, b"abc", True, True)
    chunked = OK + b"Transfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    assert exchange_with(chunked) == (200, b"abcde", True, True)
    assert exchange_with(b"HTTP/1.1 200 OK\r\n\r\nto the end") == (200, b"to the end", True, False)
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz"
    assert exchange_with(interim) == (201, b"z", True, True)
    assert exchange_with(OK + b"Content-Length: 3\r\n\r\n", method="HEAD") == (200, b"", True, True)
    assert exchange_with(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na")[3] is False
    assert exchange_with(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na")[3] is False


def test_bodies_over_the_limit_are_cut_and_the_connection_not_reused() -> None:
    assert exchange_with(OK + b"Content-Length: 2000\r\n\r\n" + b"a" * 2000) == (200, b"", False, False)
    chunked = OK + b"Transfer-Encoding: chunked\r\n\r\n400\r\n" + b"a" * 1024 + b"\r\n1\r\nb\r\n0\r\n\r\n"
    status, body, complete, reusable = exchange_with(chunked)
    assert (status, len(body), complete, reusable) == (200, 1024, False, False)
    status, body, complete, reusable = exchange_with(b"HTTP/1.1 200 OK\r\n\r\n" + b"c" * 3000)
    assert (status, len(body), complete, reusable) == (200, 1024, False, False)


@pytest.mark.parametrize(
    "reply, reason, retryable",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "HTTP/1.x", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "Content-Length", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "Content-Length", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunked", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "mid-response", True),
    ],
)
def test_malformed_responses(reply: bytes, reason: str, retryable: bool) -> None:
    def answer(connection: socket.socket, index: int) -> None:
        read_request(connection)
        connection.sendall(reply)
        connection.close()

    with scripted_server(answer) as port:
        connection = Connection.open("127.0.0.1", port, time.monotonic() + 2, label="peer")
        with pytest.raises(HttpError) as caught:
            connection.exchange(encode_request("POST", "/", "h", [], b"x"), time.monotonic() + 2)
        connection.close()
    assert not isinstance(caught.value, NoResponse)
    assert reason in caught.value.message and caught.value.message.startswith("peer ")
    assert caught.value.retryable is retryable


def test_platform_client_resends_once_after_the_peer_closed_the_idle_connection() -> None:
    def answer(connection: socket.socket, index: int) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(index).encode())
        connection.close()  # without saying so: the client still holds it as kept alive

    with scripted_server(answer) as port:
        client = HttpConnection(f"127.0.0.1:{port}")
        assert client.request("GET", "/a").body == b"0"
        time.sleep(0.1)
        assert client.request("GET", "/b").body == b"1"  # the dead connection's request went again
        client.close()


def test_platform_client_does_not_resend_on_a_fresh_connection_or_after_response_bytes() -> None:
    attempts: list[int] = []

    def silent(connection: socket.socket, index: int) -> None:
        attempts.append(index)
        read_request(connection)
        connection.close()

    with scripted_server(silent) as port, pytest.raises(NoResponse):
        HttpConnection(f"127.0.0.1:{port}").request("GET", "/")
    time.sleep(0.05)
    assert attempts == [0]

    def half(connection: socket.socket, index: int) -> None:
        attempts.append(index)
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        connection.close()

    attempts.clear()
    with scripted_server(half) as port, pytest.raises(HttpError, match="mid-response"):
        HttpConnection(f"127.0.0.1:{port}").request("GET", "/")
    time.sleep(0.05)
    assert attempts == [0]


def test_platform_long_poll_waits_without_a_deadline_and_runs_while_waiting() -> None:
    def late(connection: socket.socket, index: int) -> None:
        read_request(connection)
        time.sleep(0.3)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        time.sleep(0.5)

    waited: list[int] = []

    def while_waiting(fd: int) -> None:
        import select

        waited.append(fd)
        select.select([fd], [], [])

    with scripted_server(late) as port:
        client = HttpConnection(f"127.0.0.1:{port}")
        started = time.monotonic()
        response = client.request("GET", "/2020-01-01/extension/event/next", while_waiting=while_waiting)
        assert response.body == b"{}" and time.monotonic() - started >= 0.3 and len(waited) == 1
        client.close()
        bounded = HttpConnection(f"127.0.0.1:{port}", timeout=0.1)
        with pytest.raises(HttpError, match="before the deadline"):
            bounded.request("GET", "/")


@pytest.mark.parametrize(
    "reply, message",
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 52\r\n\r\n"
         b'{"errorType":"AccessDenied","errorMessage":"closed"}',
         "register failed: HTTP 403 AccessDenied: closed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
         "register failed: HTTP 200 MissingIdentifier: no Lambda-Extension-Identifier header"),
    ],
)
def test_a_platform_refusal_is_a_final_http_error_naming_its_error_type(reply: bytes, message: str) -> None:
    def answer(connection: socket.socket, index: int) -> None:
        read_request(connection)
        connection.sendall(reply)

    with scripted_server(answer) as port:
        client = HttpConnection(f"127.0.0.1:{port}", timeout=2)
        with pytest.raises(HttpError) as caught:
            register(client, "test", ["INVOKE"])
        client.close()
    assert caught.value.message.startswith(message)
    assert caught.value.retryable is False


def test_platform_events_are_typed_from_their_json() -> None:
    invoke = PlatformEvent({"eventType": "invoke", "deadlineMs": 1700000000123, "requestId": "r-1"})
    assert invoke.is_invoke and invoke.deadline_ms == 1700000000123 and invoke.request_id == "r-1"
    shutdown = PlatformEvent({"eventType": "SHUTDOWN", "shutdownReason": "SPINDOWN", "deadlineMs": "soon"})
    assert not shutdown.is_invoke and shutdown.deadline_ms is None and shutdown.shutdown_reason == "spindown"
    empty = PlatformEvent({})
    assert not empty.is_invoke and empty.request_id is None and empty.raw == {}


def test_the_platform_path_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    script = (
        "import sys; from lambda_wrapper.extension import HttpConnection\n"
        "import _socket; s = _socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "port = s.getsockname()[1]\n"
        "c = HttpConnection(f'127.0.0.1:{port}', timeout=0.2)\n"
        "try:\n    c.request('GET', '/')\nexcept OSError:\n    pass\n"
        # threading is not on the list: the extension's listener and event loop run on threads.
        # http_remote and errno: what only remote hosts and failures need, not loaded at Init.
        "heavy = ('ssl', 'socket', 'http.client', 'email', 'encodings.idna', 'typing',\n"
        "         'lambda_wrapper.http_remote', 'errno')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
