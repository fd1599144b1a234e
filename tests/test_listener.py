"""The telemetry listener under normal and hostile input."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from lambda_wrapper.extension.listener import MAX_CONNECTIONS, TelemetryListener
from lambda_wrapper.http11 import HttpConnection


def serve(instance: TelemetryListener) -> None:
    # Not start(): a thread named like the extension's own listener makes every later
    # test in this process (doctor's port check) believe an extension is running here.
    threading.Thread(target=instance.serve_forever, daemon=True).start()


@pytest.fixture()
def listener() -> TelemetryListener:
    instance = TelemetryListener(max_body_bytes=64 * 1024)
    instance.bind("127.0.0.1", 0)
    serve(instance)
    return instance


def post(port: int, body: bytes) -> int:
    connection = HttpConnection(f"127.0.0.1:{port}", timeout=5)
    try:
        return connection.request("POST", "/", {"Content-Type": "application/json"}, body).status
    finally:
        connection.close()


def test_stores_raw_bodies_in_order_and_answers_200(listener: TelemetryListener) -> None:
    bodies = [
        json.dumps([{"time": "t", "type": "function", "record": f"line {i}"}]).encode() for i in range(5)
    ]
    connection = HttpConnection(f"127.0.0.1:{listener.port}", timeout=5)
    statuses = [
        connection.request("POST", "/", {}, body).status for body in bodies
    ]  # one keep-alive connection
    assert statuses == [200] * 5
    assert [body for _, body in listener.take()] == bodies
    assert listener.take() == []


def test_preferred_port_taken_falls_back_to_ephemeral() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    other = TelemetryListener()
    assert other.bind("127.0.0.1", taken) not in (taken, 0)
    blocker.close()


def test_oversized_body_is_refused_and_not_buffered(listener: TelemetryListener) -> None:
    assert post(listener.port, b"x" * (64 * 1024 + 1)) == 413
    assert listener.stats.oversized == 1
    assert listener.take() == []
    assert post(listener.port, b"[]") == 200  # still serving


def test_garbage_and_trickled_headers(listener: TelemetryListener) -> None:
    junk = socket.create_connection(("127.0.0.1", listener.port))
    junk.sendall(b"\x16\x03\x01\x00garbage that is not http\r\n\r\n")
    assert junk.recv(100).startswith(b"HTTP/1.1 400")
    junk.close()
    slow = socket.create_connection(("127.0.0.1", listener.port))
    request = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]"
    for byte in request:
        slow.sendall(bytes([byte]))
    assert slow.recv(100).startswith(b"HTTP/1.1 200")
    slow.close()
    assert [body for _, body in listener.take()] == [b"[]"]


def test_connection_flood_is_bounded_and_service_continues(listener: TelemetryListener) -> None:
    idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(MAX_CONNECTIONS + 50)]
    time.sleep(0.2)
    assert listener.stats.refused_connections >= 50
    for sock in idle:
        sock.close()
    time.sleep(0.2)
    assert post(listener.port, b"[1]") == 200


def test_sink_receives_bodies_and_wakeups_fire() -> None:
    received: list[bytes] = []
    woke = threading.Event()
    instance = TelemetryListener(sink=received.append)
    instance.bind("127.0.0.1", 0)
    import os

    read_fd, write_fd = os.pipe()
    instance.watch_fd(read_fd, woke.set)
    serve(instance)
    assert post(instance.port, b"[2]") == 200
    assert received == [b"[2]"]
    os.write(write_fd, b"\x0f")
    assert woke.wait(2)
