"""The least an internal extension does during Init, for ``bench.measure_init_parts``.

It registers (no events), binds a listener, subscribes it to the Telemetry API's
platform records, serves it on a thread of its own, and asks for ``/event/next`` on
another, before the function's handler is imported: what lambda-wrapper's extension
does in its phase one, with nothing else (no settings, no exporters, no spool, no
records, no error handling). A benchmark floor, not a product: it stops at the first
surprise.

``FLOOR_IMPORTS`` (a comma list of modules) are imported first and left unused: the
floor plus the price of loading them.
"""

import _socket
import importlib
import os
import threading

for _imported in filter(None, os.environ.get("FLOOR_IMPORTS", "").split(",")):
    importlib.import_module(_imported)

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
HOST, _, PORT = API.rpartition(":")
LISTENER_PORT = 4243
SUBSCRIPTION = (
    b'{"schemaVersion":"2022-12-13","types":["platform"],'
    b'"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:%d"}}' % LISTENER_PORT
)


def request(method: bytes, path: bytes, body: bytes = b"", extension_id: bytes = b"") -> bytes:
    """One request on a fresh connection: the answer's head."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.connect((HOST, int(PORT)))
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (method, path, API.encode(), len(body))
    if extension_id:
        head += b"Lambda-Extension-Identifier: %s\r\n" % extension_id
    else:
        head += b"Lambda-Extension-Name: floor.%d\r\n" % os.getpid()
    sock.sendall(head + b"\r\n" + body)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    sock.close()
    return answer


def serve(server: _socket.socket) -> None:
    """Answer every delivery with 200 and drop it."""
    while True:
        fd, _ = server._accept()  # type: ignore[attr-defined]  # the C socket has no accept()
        client = _socket.socket(fileno=fd)
        received = b""
        while b"\r\n\r\n" not in received:
            received += client.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(body) < length:
            body += client.recv(65536)
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()


def run() -> None:
    answer = request(b"POST", b"/2020-01-01/extension/register", b'{"events":[]}')
    extension_id = b""
    for line in answer.split(b"\r\n"):
        if line.lower().startswith(b"lambda-extension-identifier:"):
            extension_id = line.split(b":", 1)[1].strip()
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", LISTENER_PORT))
    server.listen(16)
    request(b"PUT", b"/2022-07-01/telemetry", SUBSCRIPTION, extension_id)
    threading.Thread(target=serve, args=(server,), daemon=True).start()
    while True:
        request(b"GET", b"/2020-01-01/extension/event/next", b"", extension_id)


threading.Thread(target=run, daemon=True).start()
_module, _, _name = os.environ["LAMBDA_WRAPPER_HANDLER"].rpartition(".")
handler = getattr(importlib.import_module(_module), _name)
