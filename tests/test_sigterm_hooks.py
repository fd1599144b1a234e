"""supervisor.shutdown: the SIGTERM hooks run the flush for SIGTERM and for nothing
else, on both paths (the wakeup fd the listener watches, and the Python handler)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest

from lambda_wrapper.supervisor import install_sigterm_flush


@pytest.fixture()
def hooks() -> Iterator[tuple[list[float], list[Callable[[bytes], None]]]]:
    flushes: list[float] = []
    watched: list[Callable[[bytes], None]] = []
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    old_fd = signal.set_wakeup_fd(-1)
    try:
        assert install_sigterm_flush(flushes.append, lambda fd, callback: watched.append(callback))
        yield flushes, watched
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGTERM, previous)


def test_the_wakeup_fd_runs_the_flush_only_for_sigterm(
    hooks: tuple[list[float], list[Callable[[bytes], None]]],
) -> None:
    """The wakeup fd carries every signal that has a Python handler: a function's own
    SIGALRM timer must not end the pipeline."""
    flushes, watched = hooks
    assert len(watched) == 1
    on_wakeup = watched[0]
    on_wakeup(bytes([signal.SIGALRM, signal.SIGINT]))
    on_wakeup(bytes([signal.SIGUSR1]))
    assert flushes == []
    on_wakeup(bytes([signal.SIGALRM, signal.SIGTERM]))
    waited = 0
    while not flushes and waited < 200:  # the flush runs on its own thread
        time.sleep(0.01)
        waited += 1
    assert len(flushes) == 1
