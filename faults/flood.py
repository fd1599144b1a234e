"""``python -m faults.flood PORT COUNT``: hold COUNT idle connections to PORT.

A child process, so that a thousand sockets never share a file-descriptor table
with the sandbox (its platform threads run in the suite's own process). Prints
``ready`` once the connections are open, waits for a line on stdin, then prints how
many the server had closed and exits (closing the rest).
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import sys
import time


def main(port: int, count: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
    time.sleep(0.5)  # let the listener accept what it will
    print("ready", flush=True)
    sys.stdin.readline()
    print(closed_by_peer(sockets), flush=True)
    for sock in sockets:
        sock.close()
    return 0


def closed_by_peer(sockets: list[socket.socket]) -> int:
    # epoll, not select(): a thousand sockets go past select()'s 1024 fd limit.
    closed = 0
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            with contextlib.suppress(ValueError, OSError):
                selector.register(sock, selectors.EVENT_READ)
        for key, _ in selector.select(timeout=0.2):
            try:
                if key.fileobj.recv(1) == b"":  # type: ignore[union-attr]
                    closed += 1
            except ConnectionResetError:
                closed += 1
            except OSError:
                pass
    return closed


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]), int(sys.argv[2])))
