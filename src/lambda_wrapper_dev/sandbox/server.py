"""The sandbox's one loopback HTTP server, with a small method + path router.

Lambda serves the Runtime, Extensions, Telemetry and Logs APIs from one endpoint
(``AWS_LAMBDA_RUNTIME_API``), and so do we. JSON answers go through
``json_response``, which writes compact JSON plus a trailing newline, exactly what
Go's ``json.Encoder`` in RAPID produces. Handlers may block (``/next`` does), so
every connection gets its own thread; the server speaks HTTP/1.1 keep-alive because
awslambdaric holds one connection open for its whole life.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON_CONTENT_TYPE = "application/json"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class DropConnection(Exception):
    """Raised by a handler to close the connection without answering.

    Used for blocked ``/next`` calls of an environment that is being torn down: the
    process is about to be killed, and an error answer would crash awslambdaric.
    """


def json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def json_response(status: int, value: object, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    return Response(status, json_body(value), all_headers)


_EXPECTING_KEY = "Expecting property name enclosed in double quotes"
# Python's JSON decoder messages, and the context Go's scanner names for the same fault.
_GO_SYNTAX_CONTEXTS = {
    "Expecting value": "looking for beginning of value",
    _EXPECTING_KEY: "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Extra data": "after top-level value",
}


def go_json_syntax_error(error: ValueError, document: bytes) -> str:
    """The message Go's ``encoding/json`` gives for ``document``'s first syntax error.

    RAPID answers a malformed body with that message. Derived from Python's
    ``JSONDecodeError``: input that ends too early is Go's "unexpected end of JSON
    input"; otherwise the offending character and what Go's scanner was looking for.
    Faults Go names differently (inside literals and strings) keep Python's message.
    """
    message = getattr(error, "msg", str(error))
    position = getattr(error, "pos", None)
    text = document.decode("utf-8", errors="replace")
    if position is None:
        return str(error)
    if message.startswith("Illegal trailing comma"):  # Python 3.13+: Go names what follows
        position += 1
        message = "Expecting value" if message.endswith("array") else _EXPECTING_KEY
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    if position >= len(text) or message.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    context = _GO_SYNTAX_CONTEXTS.get(message)
    if context is None and message == "Expecting ',' delimiter":
        in_array = _innermost_open(text, position) == "["
        context = "after array element" if in_array else "after object key:value pair"
    if context is None:
        return str(error)
    return f"invalid character {_go_quote_char(text[position])} {context}"


def _innermost_open(text: str, end: int) -> str:
    """The innermost bracket still open at ``end`` (outside strings)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:end]:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _go_quote_char(char: str) -> str:
    """Go's ``quoteChar``: the character in single quotes, escaped like ``strconv.Quote``."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    if char.isprintable():
        return f"'{char}'"
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    return "'" + escapes.get(char, f"\\x{ord(char):02x}" if ord(char) < 0x80 else f"\\u{ord(char):04x}") + "'"


def error_response(status: int, error_type: str, message: str) -> Response:
    return json_response(status, {"errorMessage": message, "errorType": error_type})


class Request:
    """One parsed request; the body is read on demand so handlers can time it."""

    def __init__(self, handler: BaseHTTPRequestHandler, path: str, params: dict[str, str]) -> None:
        self.method = handler.command
        self.path = path
        self.params = params
        self.headers: Message = handler.headers
        self._handler = handler
        self._body: bytes | None = None

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    def body(self) -> bytes:
        if self._body is None:
            self._body = _read_body(self._handler)
        return self._body


Handler = Callable[[Request], Response]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` is a path with ``{name}`` placeholders for one segment each."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """The handler and path params; the bool says whether the path exists at all."""
        path_known = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            path_known = True
            if route_method == method:
                return handler, match.groupdict(), True
        return None, {}, path_known


class PlatformServer:
    """Serves ``router`` on 127.0.0.1 at a free port until ``close``."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._httpd = _Server(("127.0.0.1", 0), _make_handler_class(router))
        self.port: int = self._httpd.server_address[1]
        # A short poll interval keeps ``close`` (and so Sandbox.shutdown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request: object, client_address: object) -> None:
        # Killed processes reset their connections; that is the platform working.
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _make_handler_class(router: Router) -> type[BaseHTTPRequestHandler]:
    class _RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the sandbox logs platform events, not access lines

        def setup(self) -> None:
            super().setup()
            # Small request/answer pairs on a kept-alive connection: without this,
            # Nagle plus the client's delayed ACK costs 40 ms per round trip.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _dispatch(self) -> None:
            path = self.path.split("?", 1)[0]
            handler, params, path_known = router.resolve(self.command, path)
            request = Request(self, path, params)
            try:
                if handler is None:
                    # chi's answers: 404 text for unknown paths, an empty 405 otherwise.
                    response = (
                        Response(405)
                        if path_known
                        else Response(
                            404, b"404 page not found\n", {"Content-Type": "text/plain; charset=utf-8"}
                        )
                    )
                else:
                    response = handler(request)
                request.body()  # keep-alive needs the whole request consumed
            except DropConnection:
                self.close_connection = True
                _shutdown_quietly(self.connection)
                return
            self._write(response)

        def _write(self, response: Response) -> None:
            # Head and body in one write: one segment for the small answers.
            phrase = (
                HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
            )
            head = [f"{self.protocol_version} {response.status} {phrase}", f"Date: {self.date_time_string()}"]
            head += [f"{name}: {value}" for name, value in response.headers.items()]
            head.append(f"Content-Length: {len(response.body)}")
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)

        do_GET = _dispatch
        do_POST = _dispatch
        do_PUT = _dispatch
        do_DELETE = _dispatch

    return _RequestHandler


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding", "") or "").lower():
        return _read_chunked(handler)
    length = int(handler.headers.get("Content-Length", "0") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _read_chunked(handler: BaseHTTPRequestHandler) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = handler.rfile.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers (streaming responses may send some), then the blank line.
            while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()


def _shutdown_quietly(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
