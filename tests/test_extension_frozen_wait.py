"""The event loop, registered for no events, sleeps through a freeze of the environment.

Lambda freezes the environment after every invocation (the sandbox does it with the
kernel freezer, as Lambda does). A thread blocked in ``poll``, ``select`` or a socket read
is woken by every freeze and every thaw, at ~10-25 µs of CPU each time, which the
function pays once per invocation per such thread; one waiting on a lock is left asleep.
The loop's wait between flushes is held to that here, in a real process in a real
freezer cgroup.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import cgroups

pytestmark = pytest.mark.skipif(
    cgroups.unavailable_reason() is not None, reason=f"needs cgroups: {cgroups.unavailable_reason()}"
)

CYCLES = 300
# Per freeze and thaw, on the loop's thread: a thread woken by them spends several times this.
MAX_CPU_PER_CYCLE_NS = 3_000

WAITER = textwrap.dedent("""
    import os, socket, sys, threading, time
    from lambda_wrapper.export import Pipeline
    from lambda_wrapper.export.file import FileExporter
    from lambda_wrapper.extension import InternalExtension
    from lambda_wrapper.settings import Settings

    directory = sys.argv[1]
    pipeline = Pipeline([FileExporter(os.path.join(directory, "out.ndjson"))],
                        os.path.join(directory, "spool"), 1 << 20)
    extension = InternalExtension(Settings({}), pipeline, ["platform"])
    assert extension.background
    platform, ours = socket.socketpair()
    done = threading.Event()

    def loop():
        print(threading.get_native_id(), flush=True)
        extension._work_while_waiting(ours.fileno())
        done.set()

    threading.Thread(target=loop, daemon=True).start()
    sys.stdin.readline()  # frozen and thawed meanwhile
    extension._wake_event_loop()  # a flush request: the loop flushes and waits again
    time.sleep(0.05)
    assert not done.is_set()
    platform.send(b"x")  # the platform's answer: the loop returns to read it
    print("answered" if done.wait(5) else "still waiting", flush=True)
""")


def thread_cpu_ns(pid: int, tid: int) -> int:
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])


def test_the_background_event_loop_is_not_woken_by_freezing_and_thawing(tmp_path: Path) -> None:
    environment = cgroups.EnvironmentCgroups(1769)
    try:
        environment.set_cpu_unthrottled(True)
        process = subprocess.Popen(
            environment.wrap([sys.executable, "-c", WAITER, str(tmp_path)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert process.stdout is not None and process.stdin is not None
        tid = int(process.stdout.readline())
        time.sleep(0.2)  # into its wait
        before = thread_cpu_ns(process.pid, tid)
        for _ in range(CYCLES):
            assert environment.freeze()
            assert environment.thaw()
        spent = thread_cpu_ns(process.pid, tid) - before
        process.stdin.write("go\n")
        process.stdin.flush()
        answer = process.stdout.readline().strip()
        assert process.wait(10) == 0
    finally:
        environment.remove()
    assert spent / CYCLES < MAX_CPU_PER_CYCLE_NS, f"{spent / CYCLES / 1000:.1f} µs per freeze and thaw"
    assert answer == "answered"
