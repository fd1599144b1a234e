"""See SIGTERM in both awslambdaric modes, and flush before the process dies.

Lambda sends SIGTERM (then SIGKILL 500 ms later) when an internal extension is
registered. On Python 3.12+ runtimes awslambdaric polls ``/next`` from a worker
thread, so a Python signal handler runs on the main thread. On 3.10/3.11 the main
thread sits inside awslambdaric's C client and a Python handler never runs; but the
interpreter's C-level handler still writes the signal number to the wakeup fd, and
the extension's listener thread watches that fd. Whichever path notices first runs
the (idempotent) shutdown flush.
"""

from __future__ import annotations

import os
import threading
import time

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from types import FrameType
    from typing import Any
else:
    # The C module: the ``signal`` wrapper's enums cost ~0.5 ms of Init and only wrap
    # the same numbers (its SIG_DFL equals _signal's 0).
    import _signal as signal


def install(flush: Callable[[float], None], watch_fd: Callable[[int, Callable[[bytes], None]], None]) -> bool:
    """Install the SIGTERM hooks; must run on the main thread. Returns False if it could not."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        return _chain_only(flush, previous)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_fd)
        os.close(write_fd)
        return False
    if old_fd != -1:
        # Someone else owns the wakeup fd; give it back and rely on the handler alone.
        signal.set_wakeup_fd(old_fd)
        os.close(read_fd)
        os.close(write_fd)
    else:
        # Not on the listener's own thread: the platform may still be delivering the
        # last batches, and only the listener can receive them.
        def on_wakeup(signals: bytes) -> None:
            # The wakeup fd carries every signal with a Python handler (the function's
            # SIGALRM timer as well): only SIGTERM ends the environment. The flush gets
            # the time the signal was seen here, as its thread may start late.
            if signal.SIGTERM in signals:
                seen_at = time.monotonic()
                threading.Thread(target=flush, args=(seen_at,), name="lambda-wrapper-shutdown").start()

        watch_fd(read_fd, on_wakeup)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        flush(time.monotonic())
        # Then die the way we would have without a handler.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _chain_only(flush: Callable[[float], None], previous: Any) -> bool:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        flush(time.monotonic())
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
