"""Unit tests of the sandbox's pieces that need no runtime process."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lambda_wrapper_dev.sandbox import records
from lambda_wrapper_dev.sandbox.freeze_clock import FreezeClock
from lambda_wrapper_dev.sandbox.runtime_api import normalise_error_type
from lambda_wrapper_dev.sandbox.server import PlatformServer, Router, json_response
from lambda_wrapper_dev.sandbox.subscriber_views import StoredEvent, view_for
from lambda_wrapper_dev.sandbox.subscription_rules import (
    Buffering,
    Destination,
    SubscriptionInvalid,
    SubscriptionRequest,
    parse_subscription,
)
from lambda_wrapper_dev.sandbox.telemetry_bus import TelemetryBus
from lambda_wrapper_dev.sandbox.telemetry_delivery import BatchSender

pytestmark = pytest.mark.timeout(30)


class Listener:
    """A telemetry listener on 127.0.0.1 that can be told to hold its answers."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.release = threading.Event()
        self.release.set()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                listener.release.wait(10)
                listener.batches.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.batches) < count and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.release.set()
    server.server.shutdown()


def bus_with(
    listener: Listener, *, max_items: int = 1000, max_bytes: int = 262144, timeout_ms: int = 25
) -> tuple[TelemetryBus, FreezeClock, list[tuple[int, int, str]]]:
    clock = FreezeClock()
    drops: list[tuple[int, int, str]] = []
    bus = TelemetryBus(clock, lambda *drop: drops.append(drop))
    request = SubscriptionRequest(
        "telemetry",
        "2022-12-13",
        ("platform", "function"),
        Buffering(max_items, max_bytes, timeout_ms),
        Destination("HTTP", listener.port),
    )
    bus.subscribe("ext", request, view_for(request))
    return bus, clock, drops


def line(text: str) -> StoredEvent:
    return StoredEvent(records.event("function", text), text)


def test_json_answers_end_with_a_newline() -> None:
    response = json_response(202, {"status": "OK"})
    assert response.body == b'{"status":"OK"}\n'
    assert response.headers["Content-Type"] == "application/json"


def test_unknown_paths_answer_like_chi() -> None:
    router = Router()
    router.add("GET", "/known/{id}", lambda request: json_response(200, request.params))
    server = PlatformServer(router)
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/known/abc")
        known = connection.getresponse()
        assert (known.status, known.read()) == (200, b'{"id":"abc"}\n')
        connection.request("GET", "/unknown")
        unknown = connection.getresponse()
        assert (unknown.status, unknown.read()) == (404, b"404 page not found\n")
        connection.request("POST", "/known/abc")
        wrong_method = connection.getresponse()
        assert wrong_method.status == 405
        wrong_method.read()
    finally:
        server.close()


def test_error_types_are_normalised_like_rapid() -> None:
    assert normalise_error_type("Runtime.ImportModuleError") == "Runtime.ImportModuleError"
    assert normalise_error_type("Function.bad") == "Function.Unknown"
    assert normalise_error_type("whatever") == "Runtime.Unknown"


def test_subscription_defaults_and_limits() -> None:
    parsed = parse_subscription(
        "telemetry",
        {
            "schemaVersion": "2025-01-29",
            "types": ["function"],
            "destination": {"protocol": "TCP", "port": 4000},
        },
    )
    assert parsed.buffering == Buffering(10000, 262144, 1000)
    assert parsed.destination.protocol == "TCP" and parsed.destination.port == 4000
    logs = parse_subscription(
        "logs", {"types": ["platform"], "destination": {"protocol": "HTTP", "URI": "http://sandbox:9/x?y=1"}}
    )
    assert logs.schema_version == "2020-08-15" and logs.destination.path == "/x?y=1"
    with pytest.raises(SubscriptionInvalid, match="types should not be empty"):
        parse_subscription(
            "telemetry",
            {
                "schemaVersion": "2022-07-01",
                "types": [],
                "destination": {"protocol": "HTTP", "URI": "http://sandbox:9"},
            },
        )


def test_batches_are_cut_at_max_items(listener: Listener) -> None:
    bus, _, drops = bus_with(listener, max_items=3)
    for index in range(3):
        bus.publish(line(f"a{index}\n"))
    listener.wait_for(1)
    for index in range(4):
        bus.publish(line(f"b{index}\n"))
    listener.wait_for(3)
    bus.close()
    assert [len(batch) for batch in listener.batches] == [3, 3, 1]  # the last one by timeoutMs
    assert [event["record"] for event in listener.batches[0]] == ["a0\n", "a1\n", "a2\n"]
    assert drops == []


def test_batches_are_cut_at_max_bytes(listener: Listener) -> None:
    bus, _, drops = bus_with(listener, max_bytes=262144, timeout_ms=30000)
    big = "x" * 100_000 + "\n"
    for _ in range(3):
        bus.publish(line(big))
    listener.wait_for(1)
    bus.flush_all(5)
    bus.close()
    assert [len(batch) for batch in listener.batches] == [2, 1]
    assert drops == []


def test_a_batch_ready_while_one_is_in_flight_is_dropped(listener: Listener) -> None:
    bus, _, drops = bus_with(listener)
    listener.release.clear()
    bus.publish(line("first\n"))
    time.sleep(0.1)  # first batch is now in flight, its listener stuck
    bus.publish(line("second\n"))
    bus.publish(line("third\n"))
    time.sleep(0.1)
    listener.release.set()
    listener.wait_for(1)
    bus.close()
    assert drops and drops[0][1] == 2 and "slower" in drops[0][2]
    assert [event["record"] for event in listener.batches[0]] == ["first\n"]


def slow_sender(monkeypatch: pytest.MonkeyPatch, delay_s: float) -> None:
    """The platform's sender takes ``delay_s`` before its POST reaches the listener."""
    connect = BatchSender._connect

    def slow_connect(self: BatchSender) -> socket.socket:
        time.sleep(delay_s)
        return connect(self)

    monkeypatch.setattr(BatchSender, "_connect", slow_connect)


def test_the_senders_own_delay_is_not_charged_to_the_listener(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform's time before its POST reaches the listener (building, connecting:
    the sandbox's sender shares a GIL with a log flood) does not make a prompt listener
    slow: a batch ready meanwhile waits for the POST in flight."""
    slow_sender(monkeypatch, 0.3)
    bus, _, drops = bus_with(listener)
    bus.publish(line("first\n"))
    time.sleep(0.1)  # first batch taken, its POST not yet at the listener
    bus.publish(line("second\n"))
    listener.wait_for(2)
    bus.deliver_due(5)  # the listener has the batch; its answer may still be on the way back
    bus.close()
    assert not drops
    assert [event["record"] for batch in listener.batches for event in batch] == ["first\n", "second\n"]


def test_a_listener_slow_after_the_senders_delay_is_still_dropped(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_sender(monkeypatch, 0.2)
    bus, _, drops = bus_with(listener)
    listener.release.clear()
    bus.publish(line("first\n"))
    time.sleep(0.1)
    bus.publish(line("second\n"))  # ready from ~0.125 s; the listener holds the POST from ~0.2 s
    time.sleep(0.6)  # well past 0.125 + 0.2 (the sender's delay)
    listener.release.set()
    listener.wait_for(1)
    bus.close()
    assert drops and drops[0][1] == 1 and "slower" in drops[0][2]
    assert [event["record"] for event in listener.batches[0]] == ["first\n"]


def test_log_lines_reach_only_the_subscribers_of_their_category(listener: Listener) -> None:
    """A subscriber of platform telemetry is never asked about a function's lines once
    Init is over (a chatty function's lines cost it nothing); lines printed during Init
    are still replayed to a subscriber that comes later."""
    bus = TelemetryBus(FreezeClock(), lambda *drop: None)

    def publish(*texts: str) -> None:
        events = [records.event("function", text) for text in texts]
        bus.publish_lines("function", events, list(texts))

    publish("during init\n")
    asked: list[str] = []
    platform_only = SubscriptionRequest(
        "telemetry", "2022-12-13", ("platform",), Buffering(1000, 262144, 25),
        Destination("HTTP", listener.port),
    )
    platform_view = view_for(platform_only)

    def counting_view(stored: StoredEvent) -> list[dict]:
        asked.append(stored.category)
        return platform_view(stored)

    functions = SubscriptionRequest(
        "telemetry", "2022-12-13", ("function",), Buffering(1000, 262144, 25),
        Destination("HTTP", listener.port),
    )
    bus.subscribe("platform-only", platform_only, counting_view)
    bus.subscribe("functions", functions, view_for(functions))
    bus.close_subscriptions()
    publish("a\n", "b\n")
    bus.flush_all(5)
    bus.close()
    received = [event["record"] for batch in listener.batches for event in batch]
    assert received == ["during init\n", "a\n", "b\n"]
    assert asked == ["function"]  # the Init line, at its replay; never the later ones


def test_a_post_in_flight_across_a_freeze_is_waited_for(listener: Listener) -> None:
    bus, clock, drops = bus_with(listener)
    listener.release.clear()
    bus.publish(line("before freeze\n"))
    time.sleep(0.1)
    clock.freeze()
    time.sleep(0.05)
    clock.thaw()
    bus.thawed()
    bus.publish(line("after thaw\n"))
    time.sleep(0.1)  # ready while the pre-freeze POST is still in flight
    listener.release.set()
    listener.wait_for(2)
    bus.deliver_due(5)  # the listener has the batch; its answer may still be on the way back
    bus.close()
    assert drops == []
    assert [[event["record"] for event in batch] for batch in listener.batches] == [
        ["before freeze\n"],
        ["after thaw\n"],
    ]


def test_events_not_delivered_when_the_environment_goes_are_counted(listener: Listener) -> None:
    """Buffered events and a POST still in flight at teardown are logsDropped, not lost."""
    bus, _, drops = bus_with(listener, timeout_ms=10000)
    listener.release.clear()
    bus.publish(line("in flight\n"))
    bus.publish_many([line(f"buffered {n}\n") for n in range(999)])  # a full batch: sent at once
    time.sleep(0.1)
    bus.publish_many([line("still buffered\n"), line("and this\n")])
    bus.reset()
    listener.release.set()
    bus.close()
    assert [(count, reason) for _, count, reason in drops] == [
        (1002, "Some logs were dropped because the environment shut down before they were delivered")
    ]


def test_nothing_is_sent_while_frozen(listener: Listener) -> None:
    bus, clock, _ = bus_with(listener)
    clock.freeze()
    bus.publish(line("held\n"))
    time.sleep(0.15)
    assert listener.batches == []
    clock.thaw()
    bus.thawed()
    listener.wait_for(1)
    bus.close()
    assert [event["record"] for event in listener.batches[0]] == ["held\n"]


def test_failed_posts_are_dropped_and_reported() -> None:
    clock = FreezeClock()
    drops: list[tuple[int, int, str]] = []
    bus = TelemetryBus(clock, lambda *drop: drops.append(drop))
    request = SubscriptionRequest(
        "telemetry", "2022-12-13", ("function",), Buffering(1000, 262144, 25), Destination("HTTP", 1)
    )  # nothing listens on port 1
    bus.subscribe("ext", request, view_for(request))
    bus.publish(line("lost\n"))
    deadline = time.monotonic() + 3
    while not drops and time.monotonic() < deadline:
        time.sleep(0.01)
    bus.close()
    assert drops and drops[0][1] == 1 and drops[0][2].startswith("could not send events: ")


def test_tcp_destinations_get_ndjson_on_one_connection() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    clock = FreezeClock()
    bus = TelemetryBus(clock, lambda *drop: None)
    request = SubscriptionRequest(
        "telemetry", "2022-12-13", ("function",), Buffering(1000, 262144, 25), Destination("TCP", port)
    )
    bus.subscribe("ext", request, view_for(request))
    bus.publish(line("one\n"))
    connection, _ = server.accept()
    connection.settimeout(5)
    received = b""
    while received.count(b"\n") < 1:
        received += connection.recv(65536)
    bus.publish(line("two\n"))
    while received.count(b"\n") < 2:
        received += connection.recv(65536)
    bus.close()
    connection.close()
    server.close()
    assert [json.loads(item)["record"] for item in received.splitlines()] == ["one\n", "two\n"]


def _reads_of(fd: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every ``os.read`` of ``fd`` (-1 for one that found the pipe empty)."""
    import os

    sizes: list[int] = []
    real_read = os.read

    def read(target: int, size: int) -> bytes:
        if target != fd:
            return real_read(target, size)
        try:
            chunk = real_read(target, size)
        except BlockingIOError:
            sizes.append(-1)
            raise
        sizes.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", read)
    return sizes


def test_a_line_printed_alone_costs_the_output_reader_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that returns less than it asked for has emptied the pipe: the reader does not
    ask again (that read would only fail with EAGAIN, on every line a function prints)."""
    import os

    from lambda_wrapper_dev.sandbox.process import OutputReader

    read_fd, write_fd = os.pipe()
    sizes = _reads_of(read_fd, monkeypatch)
    received: list[str] = []
    arrived = threading.Event()

    def on_lines(lines: list[str]) -> None:
        received.extend(lines)
        arrived.set()

    reader = OutputReader(read_fd, on_lines, "test")
    try:
        os.write(write_fd, b"one line\n")
        assert arrived.wait(5)
        time.sleep(0.1)  # a second read, if there were one, would have happened by now
        assert received == ["one line\n"]
        assert sizes == [9]
    finally:
        os.close(write_fd)
        assert reader.finished.wait(5)


def test_drain_publishes_everything_written_past_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that fill their buffer go on: what was written before ``drain`` is all out
    when it returns, however many reads that takes."""
    import fcntl
    import os

    from lambda_wrapper_dev.sandbox.process import READ_BYTES, OutputReader

    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # room for all of it before anyone reads
    lines = [f"line {index:07d}\n" for index in range(30000)]  # 390,000 bytes: six reads' worth
    data = "".join(lines).encode()
    assert len(data) > 5 * READ_BYTES
    os.write(write_fd, data)
    sizes = _reads_of(read_fd, monkeypatch)
    received: list[str] = []
    reader = OutputReader(read_fd, received.extend, "test")
    try:
        reader.drain()
        assert received == lines
        assert sizes.count(READ_BYTES) == len(data) // READ_BYTES
    finally:
        os.close(write_fd)
        assert reader.finished.wait(5)
    assert received == lines  # end of file adds nothing
