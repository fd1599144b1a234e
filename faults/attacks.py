"""Hostile clients of the telemetry listener (it runs inside the function process).

Each attack returns what it observed; ``probe`` is the well-behaved sender (the
platform's shape: one POST of a JSON array per connection), used to show that the
listener still serves while, and after, it is attacked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .functions import MARK

OVERSIZED_BYTES = 5 * 1024 * 1024  # over the listener's 4 MiB cap
TRICKLERS = 3
TRICKLE_DELAY_S = 0.01


@dataclass
class Observed:
    ok: bool
    summary: str
    notes: list[str] = field(default_factory=list)
    # Must come out of the exporter; named apart from the invocations' own markers
    # (``<tag>.warm``, ``<tag>.during``, ``<tag>.after``), or a probe lost would go unseen.
    probe_marks: list[str] = field(default_factory=list)


def telemetry_body(mark: str) -> bytes:
    event = {"time": "2024-01-01T00:00:00.000Z", "type": "function", "record": f"{MARK} {mark}\n"}
    return json.dumps([event]).encode()


def exchange(port: int, data: bytes, timeout: float = 3.0) -> tuple[int | None, float]:
    """Send raw bytes on a fresh connection; the answer's status (None: closed or no
    answer) and how long it took."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            with contextlib.suppress(OSError):  # the listener may close mid-send (that is an answer)
                sock.sendall(data)
            answer = b""
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return None, time.monotonic() - started
    parts = answer.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, time.monotonic() - started


def post(port: int, body: bytes, timeout: float = 3.0) -> tuple[int | None, float]:
    head = (
        f"POST / HTTP/1.1\r\nHost: sandbox.localdomain:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return exchange(port, head + body, timeout)


def probe(port: int, mark: str) -> tuple[int | None, float]:
    return post(port, telemetry_body(mark))


# -- the attacks ---------------------------------------------------------------------------


def non_http(port: int, tag: str) -> Observed:
    payloads = {
        "TLS ClientHello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
        "random bytes": os.urandom(4096),
        "bare newline request": b"GET\r\n\r\n",
        "70 kB without a line end": b"\x00" * 70000,
        "SSH banner": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    }
    answers = {name: exchange(port, data)[0] for name, data in payloads.items()}
    accepted = [name for name, status in answers.items() if status is not None and status < 300]
    status, took = probe(port, f"{tag}.probe")
    ok = not accepted and status == 200
    return Observed(
        ok,
        f"{len(payloads)} non-HTTP payloads: answers {sorted(set(map(str, answers.values())))}",
        [f"answers: {answers}", f"probe after: {status} in {took * 1000:.0f} ms"],
        [f"{tag}.probe"],
    )


def malformed_json(port: int, tag: str) -> Observed:
    bodies = [
        b'[{"time": ',
        b'{"not": "a list"}',
        b"[1, 2, 3]",
        b"\xff\xfe\x00garbage",
        b"[" * 50000,
        b'[{"time": "x", "type": "function", "record": {"deep": ' * 200 + b"1" + b"}}]" * 200,
        b"null",
        b'"a string"',
        b"[]",
    ]
    answers = [post(port, body)[0] for body in bodies]
    status, took = probe(port, f"{tag}.probe")
    ok = all(answer == 200 for answer in answers) and status == 200
    return Observed(
        ok,
        f"{len(bodies)} malformed bodies acknowledged {answers.count(200)}/{len(bodies)}",
        [f"answers: {answers}", f"probe after: {status} in {took * 1000:.0f} ms"],
        [f"{tag}.probe"],
    )


def oversized(port: int, tag: str) -> Observed:
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {OVERSIZED_BYTES}\r\n\r\n").encode()
    status, took = exchange(port, head + b"[" + b" " * (1024 * 1024), timeout=5)
    after, _ = probe(port, f"{tag}.probe")
    ok = status == 413 and after == 200
    return Observed(
        ok,
        f"{OVERSIZED_BYTES >> 20} MiB body answered {status}",
        [f"answered {status} in {took * 1000:.0f} ms; probe after: {after}"],
        [f"{tag}.probe"],
    )


def trickled_headers(port: int, tag: str) -> Observed:
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
    answers: list[int | None] = []

    def trickle() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                for byte in request:
                    sock.send(bytes([byte]))
                    time.sleep(TRICKLE_DELAY_S)
                answer = sock.recv(4096)
                answers.append(int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/") else None)
        except OSError:
            answers.append(None)

    threads = [threading.Thread(target=trickle) for _ in range(TRICKLERS)]
    for thread in threads:
        thread.start()
    time.sleep(len(request) * TRICKLE_DELAY_S / 2)
    status, took = probe(port, f"{tag}.probe")  # while they are half-way through their headers
    for thread in threads:
        thread.join(30)
    ok = status == 200 and took < 1.0
    return Observed(
        ok,
        f"{TRICKLERS} clients at 1 byte/{TRICKLE_DELAY_S * 1000:.0f} ms; probe meanwhile {status} "
        f"in {took * 1000:.0f} ms",
        [f"tricklers answered {answers}"],
        [f"{tag}.probe"],
    )


def flood(port: int, tag: str, connections: int) -> Observed:
    # From a child process: a thousand sockets in this process would push the
    # sandbox's own sockets past select()'s 1024 fd limit (its platform runs here).
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "faults.flood", str(port), str(connections)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        ready = child.stdout.readline().strip() == "ready"
        during, took = probe(port, f"{tag}.probe-during")
        child.stdin.write("report\n")
        child.stdin.flush()
        closed = child.stdout.readline().strip()
    finally:
        child.stdin.close()
        child.wait(30)
    time.sleep(0.2)
    after, _ = probe(port, f"{tag}.probe-after")
    ok = ready and during == 200 and after == 200
    return Observed(
        ok,
        f"{connections} idle connections: {closed} closed by the listener; probe during "
        f"{during} in {took * 1000:.0f} ms, after {after}",
        [],
        [f"{tag}.probe-during", f"{tag}.probe-after"],
    )
