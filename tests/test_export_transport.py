"""The transport: one POST within a deadline, errors classified, secrets never shown."""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from http_receiver import Receiver, Reply
from lambda_wrapper.export.failures import ExportError
from lambda_wrapper.export.transport import (
    Endpoint,
    HttpResponse,
    Transport,
    check_status,
    gzip_body,
    join_url_path,
    json_body,
    parse_retry_after,
)

SLACK_S = 0.05
SECRET = "tok-9f8e7d6c5b4a"


def post(
    transport: Transport,
    url: str,
    deadline_s: float = 2.0,
    headers: Sequence[tuple[str, str]] = (),
    content_encoding: str | None = None,
    timeout_s: float | None = None,
) -> HttpResponse:
    return transport.post(
        Endpoint(url),
        b'{"a":1}',
        "application/json",
        time.monotonic() + deadline_s,
        headers=headers,
        content_encoding=content_encoding,
        timeout_s=timeout_s,
    )


def timed_failure(call: Callable[[], object]) -> tuple[ExportError, float]:
    started = time.monotonic()
    with pytest.raises(ExportError) as caught:
        call()
    return caught.value, time.monotonic() - started


# -- raw servers that misbehave -----------------------------------------------------


class RawServer:
    """Accepts connections on 127.0.0.1 and runs ``behave(connection, index)`` for each."""

    def __init__(self, behave: Callable[[socket.socket, int], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests = 0
        self._open: list[socket.socket] = []
        self._behave = behave
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(connection)
            index = self.accepted
            self.accepted += 1
            threading.Thread(target=self._run, args=(connection, index), daemon=True).start()

    def _run(self, connection: socket.socket, index: int) -> None:
        with contextlib.suppress(OSError):
            self._behave(connection, index)

    def read_request(self, connection: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += connection.recv(65536)
        self.requests += 1
        return head

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/v1/logs"

    def close(self) -> None:
        self.sock.close()
        for connection in self._open:
            with contextlib.suppress(OSError):
                connection.close()


@contextlib.contextmanager
def raw_server(behave: Callable[[RawServer, socket.socket, int], None]) -> Iterator[RawServer]:
    holder: list[RawServer] = []
    server = RawServer(lambda connection, index: behave(holder[0], connection, index))
    holder.append(server)
    try:
        yield server
    finally:
        server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


# -- success and connection reuse ---------------------------------------------------


def test_post_sends_body_and_headers_and_reuses_the_connection(receiver: Receiver) -> None:
    transport = Transport()
    for _ in range(3):
        response = post(
            transport, receiver.url("/v1/logs?x=1"), headers=[("X-Api-Key", SECRET)], content_encoding="gzip"
        )
        assert response.status == 200
    assert len({request.connection for request in receiver.requests}) == 1
    request = receiver.requests[0]
    assert request.path == "/v1/logs?x=1" and request.body == b'{"a":1}'
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["user-agent"].startswith("lambda-wrapper/")


def test_user_headers_cannot_replace_the_framing(receiver: Receiver) -> None:
    post(Transport(), receiver.url(), headers=[("Content-Length", "999"), ("Host", "evil"), ("X-Ok", "1")])
    headers = receiver.requests[0].headers
    assert (
        headers["content-length"] == "7"
        and headers["host"].startswith("127.0.0.1:")
        and headers["x-ok"] == "1"
    )


def test_user_info_in_the_url_becomes_basic_auth_and_never_shows(receiver: Receiver) -> None:
    url = receiver.url("/ingest").replace("://", "://user:p%40ss@")
    endpoint = Endpoint(url)
    assert "p@ss" not in endpoint.origin and "user" not in endpoint.origin
    post(Transport(), url)
    assert receiver.requests[0].headers["authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_an_idle_connection_closed_by_the_server_is_not_reused() -> None:
    # The server answers, then closes the idle connection, as servers do after their
    # keep-alive timeout, typically while the Lambda environment is frozen.
    def answer_then_close(server: RawServer, connection: socket.socket, index: int) -> None:
        server.read_request(connection)
        connection.sendall(OK)
        connection.close()

    with raw_server(answer_then_close) as server:
        transport = Transport()
        post(transport, server.url())
        time.sleep(0.05)
        post(transport, server.url())
        assert server.accepted == 2 and server.requests == 2


def test_a_request_lost_on_a_stale_connection_is_sent_once_more_on_a_fresh_one() -> None:
    # The first connection looks alive but dies when the second request arrives (what
    # a connection that did not survive a freeze does); the retry must go through.
    def die_on_second_request(server: RawServer, connection: socket.socket, index: int) -> None:
        server.read_request(connection)
        connection.sendall(OK)
        if index == 0:
            server.read_request(connection)
            connection.close()
            return
        while server.read_request(connection):
            connection.sendall(OK)

    with raw_server(die_on_second_request) as server:
        transport = Transport()
        post(transport, server.url())
        assert post(transport, server.url()).status == 200
        assert server.accepted == 2 and server.requests == 3


def test_a_fresh_connection_closed_without_answer_is_not_resent() -> None:
    def read_and_close(server: RawServer, connection: socket.socket, index: int) -> None:
        server.read_request(connection)
        connection.close()

    with raw_server(read_and_close) as server:
        error, _ = timed_failure(lambda: post(Transport(), server.url()))
        assert error.retryable and "closed the connection" in error.message
        assert server.requests == 1


def test_connections_idle_too_long_are_not_reused(receiver: Receiver) -> None:
    transport = Transport(max_idle_s=0.0)
    post(transport, receiver.url())
    post(transport, receiver.url())
    assert len({request.connection for request in receiver.requests}) == 2


# -- failures and the deadline ----------------------------------------------------------


def test_refused_connection_is_retryable_and_quick() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    error, elapsed = timed_failure(lambda: post(Transport(), f"http://127.0.0.1:{port}/"))
    assert error.retryable and "could not connect" in error.message and elapsed < 1.0


def test_a_server_that_never_answers_costs_no_more_than_the_deadline() -> None:
    def hang(server: RawServer, connection: socket.socket, index: int) -> None:
        server.read_request(connection)
        time.sleep(5)

    with raw_server(hang) as server:
        error, elapsed = timed_failure(lambda: post(Transport(), server.url(), deadline_s=0.3))
    assert error.retryable and "deadline" in error.message
    assert 0.3 - 0.01 <= elapsed <= 0.3 + SLACK_S


def test_a_server_that_trickles_bytes_cannot_stretch_the_deadline() -> None:
    def trickle(server: RawServer, connection: socket.socket, index: int) -> None:
        server.read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            connection.sendall(b"x")
            time.sleep(0.04)

    with raw_server(trickle) as server:
        error, elapsed = timed_failure(lambda: post(Transport(), server.url(), deadline_s=0.3))
    assert error.retryable and elapsed <= 0.3 + SLACK_S


def test_the_configured_timeout_shortens_the_deadline(receiver: Receiver) -> None:
    receiver.reply(Reply(delay=1.0))
    error, elapsed = timed_failure(lambda: post(Transport(), receiver.url(), deadline_s=5.0, timeout_s=0.2))
    assert error.retryable and elapsed <= 0.2 + SLACK_S


def test_a_slow_answer_within_the_deadline_succeeds(receiver: Receiver) -> None:
    receiver.reply(Reply(delay=0.2))
    assert post(Transport(), receiver.url(), deadline_s=1.0).status == 200


def test_no_time_left_fails_at_once(receiver: Receiver) -> None:
    error, elapsed = timed_failure(lambda: post(Transport(), receiver.url(), deadline_s=-1.0))
    assert error.retryable and elapsed < 0.01 and not receiver.requests


def test_dns_failure_is_retryable_and_bounded() -> None:
    error, elapsed = timed_failure(lambda: post(Transport(), "http://no-such-host.invalid/", deadline_s=1.0))
    assert error.retryable and "no-such-host.invalid" in error.message and elapsed <= 1.0 + SLACK_S


def test_a_hanging_dns_lookup_does_not_hold_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def slow_getaddrinfo(host: str | bytes, *args: object, **kwargs: object) -> object:
        if host in ("slow.example", b"slow.example"):  # an ASCII name goes in as bytes (no idna codec)
            time.sleep(0.6)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    error, elapsed = timed_failure(lambda: post(Transport(), "http://slow.example:9/", deadline_s=0.2))
    assert error.retryable and "DNS" in error.message and elapsed <= 0.2 + SLACK_S


def test_an_http_server_that_is_not_http_is_a_permanent_error() -> None:
    def garbage(server: RawServer, connection: socket.socket, index: int) -> None:
        server.read_request(connection)
        connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    with raw_server(garbage) as server:
        error, _ = timed_failure(lambda: post(Transport(), server.url()))
    assert not error.retryable and "HTTP/1.x" in error.message


def test_interim_and_chunked_responses_are_read() -> None:
    def chunked(server: RawServer, connection: socket.socket, index: int) -> None:
        while server.read_request(connection):
            connection.sendall(
                b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
            )

    with raw_server(chunked) as server:
        transport = Transport()
        first = post(transport, server.url())
        second = post(transport, server.url())
        assert (first.status, first.body) == (202, b"abcde")
        assert second.body == b"abcde" and server.accepted == 1


# -- statuses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (401, False),
        (404, False),
        (413, False),
        (301, False),
    ],
)
def test_status_classification(receiver: Receiver, status: int, retryable: bool) -> None:
    receiver.reply(Reply(status=status, body=b"nope", headers={"Retry-After": "7"}))
    endpoint = Endpoint(receiver.url())
    response = Transport().post(endpoint, b"{}", "application/json", time.monotonic() + 2)
    with pytest.raises(ExportError) as caught:
        check_status(response, endpoint, "test")
    error = caught.value
    assert error.retryable is retryable
    assert f"HTTP {status}" in error.message and "nope" in error.message
    assert error.retry_after_s == (7.0 if retryable else None)


def test_retry_after_as_an_http_date(receiver: Receiver) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    receiver.reply(Reply(status=429, headers={"Retry-After": when}))
    endpoint = Endpoint(receiver.url())
    response = Transport().post(endpoint, b"{}", "application/json", time.monotonic() + 2)
    with pytest.raises(ExportError) as caught:
        check_status(response, endpoint, "test")
    assert caught.value.retry_after_s == pytest.approx(30, abs=1.5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past: retry now
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),
        ("Sun Nov  6 08:49:37 1994", 0.0),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_http_dates_in_all_three_formats_parse_to_the_same_instant(epoch: int) -> None:
    imf = email.utils.formatdate(epoch, usegmt=True)
    parsed = time.gmtime(epoch)
    asctime = time.strftime("%a %b ", parsed) + f"{parsed.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", parsed)
    for text in (imf, asctime):
        assert parse_retry_after(text, now=0.0) == float(epoch), text


# -- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_receiver(certificate: tuple[Path, Path]) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with Receiver(tls=context) as server:
        yield server


def test_an_untrusted_certificate_is_a_permanent_error(tls_receiver: Receiver) -> None:
    error, _ = timed_failure(
        lambda: post(Transport(), tls_receiver.url("/v1/traces"), headers=[("Authorization", SECRET)])
    )
    assert not error.retryable and "not trusted" in error.message
    assert SECRET not in error.message and not tls_receiver.requests


def test_a_trusted_certificate_works_and_the_hostname_is_checked(
    tls_receiver: Receiver, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # read by OpenSSL's default verify paths
    transport = Transport()
    assert post(transport, tls_receiver.url()).status == 200
    assert post(transport, tls_receiver.url()).status == 200
    assert len({request.connection for request in tls_receiver.requests}) == 1  # TLS kept alive too
    wrong_name = tls_receiver.url().replace("127.0.0.1", "localhost.localdomain.invalid")
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", tls_receiver.port))],
    )
    error, _ = timed_failure(lambda: post(Transport(), wrong_name))
    assert not error.retryable and "not trusted" in error.message


def test_tls_to_a_plain_http_port_fails_retryably_without_hanging(receiver: Receiver) -> None:
    error, elapsed = timed_failure(
        lambda: post(Transport(), receiver.url().replace("http:", "https:"), deadline_s=1.0)
    )
    assert error.retryable and elapsed <= 1.0 + SLACK_S


# -- secrets ---------------------------------------------------------------------


def test_secrets_never_appear_in_error_messages(receiver: Receiver) -> None:
    receiver.reply(Reply(status=401, body=f'{{"error":"invalid key {SECRET}"}}'.encode()))
    url = receiver.url("/v1/logs/" + SECRET).replace("://", f"://user:{SECRET}@") + f"?api_key={SECRET}"
    endpoint = Endpoint(url)
    response = Transport().post(
        endpoint, b"{}", "application/json", time.monotonic() + 2, headers=[("X-Api-Key", SECRET)]
    )
    messages = []
    with pytest.raises(ExportError) as caught:
        check_status(response, endpoint, "test", secrets=[SECRET])
    messages.append(caught.value.message)
    assert "<redacted>" in caught.value.message
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = probe.getsockname()[1]
    for failing in (url.replace(str(receiver.port), str(closed)), url.replace("http:", "https:")):
        error, _ = timed_failure(
            lambda failing=failing: Transport().post(  # type: ignore[misc]
                Endpoint(failing),
                b"{}",
                "application/json",
                time.monotonic() + 1,
                headers=[("X-Api-Key", SECRET)],
            )
        )
        messages.append(error.message)
        messages.append(repr(error))
    for message in messages:
        assert SECRET not in message
        assert "api_key" not in message


# -- pieces ----------------------------------------------------------------------


def test_endpoint_parsing() -> None:
    endpoint = Endpoint("HTTPS://[::1]:8443/a/b?c=d#frag")
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.target) == (
        "https",
        "::1",
        8443,
        "/a/b?c=d",
    )
    assert endpoint.host_header == "[::1]:8443" and endpoint.origin == "https://[::1]:8443"
    assert Endpoint("http://collector").target == "/" and Endpoint("http://collector").port == 80
    assert Endpoint("http://collector?x=1").target == "/?x=1"
    assert Endpoint("https://collector:443/").host_header == "collector"
    for bad in ("ftp://x", "http://", "http://host:notaport/", "http://host:70000", "http://[::1/"):
        with pytest.raises(ValueError) as caught:
            Endpoint(bad)
        assert bad not in str(caught.value)


def test_join_url_path() -> None:
    assert join_url_path("http://c:4318", "v1/logs") == "http://c:4318/v1/logs"
    assert join_url_path("http://c:4318/", "v1/logs") == "http://c:4318/v1/logs"
    assert join_url_path("https://c/otlp?k=v", "v1/traces") == "https://c/otlp/v1/traces?k=v"


def test_json_and_gzip_bodies() -> None:
    value = {"n": float("nan"), "i": float("inf"), "s": "é\ud800", "l": [1, 2.5]}
    body = json_body(value)
    assert body.decode("utf-8")  # valid UTF-8 even with a lone surrogate
    assert b"NaN" not in body and b"Infinity" not in body
    assert gzip.decompress(gzip_body(body)) == body


def test_the_module_imports_nothing_heavy() -> None:
    code = (
        "import sys; import lambda_wrapper.export.transport; "
        "print(','.join(m for m in ('ssl', 'http.client', 'gzip', 'zlib', 'socket', 'email', 'typing') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
