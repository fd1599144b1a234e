"""The telemetry listener under normal and hostile input."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lambda_wrapper.extension import MAX_CONNECTIONS, HttpConnection, TelemetryListener


def serve(instance: TelemetryListener) -> None:
    # Not start(): a thread named like the extension's own listener makes every later
    # test in this process (doctor's port check) believe an extension is running here.
    threading.Thread(target=instance.serve_forever, daemon=True).start()


class Served:
    """A running listener and the bodies its sink received, in order."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.instance = TelemetryListener(self.bodies.append, max_body_bytes=64 * 1024)
        self.port = self.instance.bind("127.0.0.1", 0)
        serve(self.instance)


@pytest.fixture()
def listener() -> Served:
    return Served()


def post(port: int, body: bytes) -> int:
    connection = HttpConnection(f"127.0.0.1:{port}", timeout=5)
    try:
        return connection.request("POST", "/", {"Content-Type": "application/json"}, body).status
    finally:
        connection.close()


def test_stores_raw_bodies_in_order_and_answers_200(listener: Served) -> None:
    bodies = [
        json.dumps([{"time": "t", "type": "function", "record": f"line {i}"}]).encode() for i in range(5)
    ]
    connection = HttpConnection(f"127.0.0.1:{listener.port}", timeout=5)
    statuses = [
        connection.request("POST", "/", {}, body).status for body in bodies
    ]  # one keep-alive connection
    assert statuses == [200] * 5
    assert listener.bodies == bodies


def test_preferred_port_taken_falls_back_to_ephemeral() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    received: list[bytes] = []
    other = TelemetryListener(received.append)
    assert other.bind("127.0.0.1", taken) not in (taken, 0)
    blocker.close()


def test_a_host_that_cannot_be_bound_fails_with_its_own_error() -> None:
    listener = TelemetryListener(lambda body: None)
    with pytest.raises(OSError, match="assign requested address"):
        listener.bind("192.0.2.1", 4271)  # TEST-NET-1: no interface here has it
    assert listener.port == 0


def test_oversized_body_is_refused_and_not_buffered(listener: Served) -> None:
    assert post(listener.port, b"x" * (64 * 1024 + 1)) == 413
    assert listener.instance.oversized == 1
    assert listener.bodies == []
    assert post(listener.port, b"[]") == 200  # still serving
    assert listener.bodies == [b"[]"]


def test_garbage_and_trickled_headers(listener: Served) -> None:
    junk = socket.create_connection(("127.0.0.1", listener.port))
    junk.sendall(b"\x16\x03\x01\x00garbage that is not http\r\n\r\n")
    assert junk.recv(100).startswith(b"HTTP/1.1 400")
    junk.close()
    # A length that str.isdigit accepts and int does not (a superscript two in Latin-1).
    not_a_number = socket.create_connection(("127.0.0.1", listener.port))
    not_a_number.settimeout(1.0)
    not_a_number.sendall(b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n")
    assert not_a_number.recv(100).startswith(b"HTTP/1.1 400")
    not_a_number.close()
    assert listener.instance.bad_requests == 2
    slow = socket.create_connection(("127.0.0.1", listener.port))
    request = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]"
    for byte in request:
        slow.sendall(bytes([byte]))
    assert slow.recv(100).startswith(b"HTTP/1.1 200")
    slow.close()
    assert listener.bodies == [b"[]"]


def test_connection_flood_is_bounded_and_service_continues(listener: Served) -> None:
    idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(MAX_CONNECTIONS + 50)]
    time.sleep(0.2)
    assert listener.instance.refused_connections >= 50
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
    signals: list[bytes] = []

    def on_wakeup(data: bytes) -> None:
        signals.append(data)
        woke.set()

    instance.watch_fd(read_fd, on_wakeup)
    serve(instance)
    assert post(instance.port, b"[2]") == 200
    assert received == [b"[2]"]
    os.write(write_fd, b"\x0f")
    assert woke.wait(2)
    assert signals == [b"\x0f"]


def test_a_sink_that_refuses_makes_the_listener_refuse() -> None:
    def full(body: bytes) -> None:
        raise OSError("full")

    instance = TelemetryListener(full)
    instance.bind("127.0.0.1", 0)
    serve(instance)
    assert post(instance.port, b"[3]") == 503
    assert instance.refused_full == 1 and instance.batches == 0


def _kill(thread: threading.Thread | None, ended: Callable[[], bool]) -> None:
    """As the fault suite kills our threads: SystemExit raised into it until its loop has
    ended (the first one may land in a handler that catches it), then no more, so that
    none lands in the thread's exception hook."""
    import ctypes

    assert thread is not None and thread.ident is not None
    until = time.monotonic() + 5
    while not ended() and time.monotonic() < until:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
        time.sleep(0.002)
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill
def test_a_killed_listener_or_event_loop_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The supervisor's per-invocation check reads flags the threads clear as they end,
    not ``Thread.is_alive``: a thread killed by an exception raised into it still ends
    with its flag down, and is started again, once."""
    from lambda_wrapper.export import Pipeline
    from lambda_wrapper.export.file import FileExporter
    from lambda_wrapper.extension import InternalExtension
    from lambda_wrapper.settings import Settings

    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")  # nothing answers: the loop keeps asking
    pipeline = Pipeline([FileExporter(str(tmp_path / "out.ndjson"))], str(tmp_path / "spool"), 1 << 20)
    extension = InternalExtension(Settings({}), pipeline, ["platform"])
    extension.extension_id = "id"
    extension._connection = HttpConnection("127.0.0.1:9")
    extension.listener.bind("127.0.0.1", 0)
    extension.start_listener()
    # Phase one's thread goes on into the event loop once registered: that thread alone.
    extension._loop_running = True
    extension._spawn(extension._event_loop, "lambda-wrapper-extension")
    loop, listener = extension._threads[0], extension._listener_thread
    assert listener is not None
    try:
        extension.ensure_running()  # both alive: nothing to do
        assert (extension._threads[0], extension._listener_thread) == (loop, listener)
        _kill(loop, lambda: not extension._loop_running)
        _kill(listener, lambda: not extension.listener.serving)
        extension.ensure_running()
        loop, listener = extension._threads[0], extension._listener_thread
        assert listener is not None and loop.is_alive() and listener.is_alive()
        extension.ensure_running()  # alive again: no second thread
        assert (extension._threads[0], extension._listener_thread) == (loop, listener)
        err = capsys.readouterr().err
        assert err.count('"extension_restarted"') == 1 and err.count('"listener_restarted"') == 1
    finally:  # a live thread named like ours would make later tests see an extension here
        _kill(loop, lambda: not extension._loop_running)
        _kill(listener, lambda: not extension.listener.serving)


def test_a_listener_that_cannot_start_still_lets_init_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """Once registered, the platform ends Init only when the extension asks for its next
    event: a listener thread that cannot start costs the telemetry, never the Init."""
    from lambda_wrapper.export import Pipeline
    from lambda_wrapper.export.file import FileExporter
    from lambda_wrapper.extension import InternalExtension
    from lambda_wrapper.settings import Settings
    from lambda_wrapper_dev.sandbox.extensions_api import ExtensionsApi
    from lambda_wrapper_dev.sandbox.server import PlatformServer, Router
    from lambda_wrapper_dev.sandbox.state import AgentStates, EnvironmentState
    from lambda_wrapper_dev.sandbox.telemetry_api import TelemetryApi

    env = EnvironmentState("test_function", "app.handler", [])
    router = Router()
    ExtensionsApi(lambda: env, lambda agent: None).mount(router)
    TelemetryApi(lambda: env, lambda agent, request: None).mount(router)
    server = PlatformServer(router)
    server.start()
    try:
        monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", f"127.0.0.1:{server.port}")
        pipeline = Pipeline([FileExporter(str(tmp_path / "out.ndjson"))], str(tmp_path / "spool"), 1 << 20)
        extension = InternalExtension(Settings({}), pipeline, ["platform"])

        def cannot_start() -> threading.Thread:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(extension.listener, "start", cannot_start)
        extension.begin()
        assert extension.registered() is True
        extension.release()
        until = time.monotonic() + 5
        while time.monotonic() < until and [a.state for a in env.registered_agents()] != [AgentStates.READY]:
            time.sleep(0.01)
        assert [agent.state for agent in env.registered_agents()] == [AgentStates.READY]
        assert "listener_failed" in capsys.readouterr().err
    finally:
        env.close()
        server.close()
