"""The processes of an execution environment: spawn, output lines, signals, memory.

Every process (the runtime, each external extension) is started in its own
session, so it leads a process group; signals go to the whole group, as RAPID's
supervisor does (contract 4.2). Without cgroups (see ``cgroups``), freezing is
SIGSTOP to the group and thawing is SIGCONT, which stops every thread of it.

Output: stdout and stderr share one pipe (they share one log stream on Lambda),
split into lines that keep their ``\\n`` and handed on a read (up to 64 KiB) at a
time. ``drain`` reads whatever is already in the pipe, so the platform can publish
a function's log lines before the ``platform.runtimeDone`` that follows them, and
before it signals the process at shutdown.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence

MAX_LINE_BYTES = 256 * 1024
READ_BYTES = 65536

LinesSink = Callable[[list[str]], None]
ExitSink = Callable[["ManagedProcess", int], None]


class OutputReader:
    def __init__(self, fd: int, on_lines: LinesSink, name: str) -> None:
        self._fd = fd
        self._on_lines = on_lines
        self._lock = threading.Lock()
        self._partial = b""
        self._eof = False
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"output-{name}", daemon=True)
        self._thread.start()

    def drain(self) -> None:
        """Publish everything written to the pipe so far (waits for a read in progress)."""
        with self._lock:
            self._read_available()

    def _run(self) -> None:
        try:
            while not self._eof:
                try:
                    select.select([self._fd], [], [], 0.5)
                except (OSError, ValueError):
                    break
                with self._lock:
                    self._read_available()
        finally:
            with self._lock:
                if self._partial:
                    self._emit([self._partial])
                    self._partial = b""
                self._eof = True  # a later drain must not read the fd number once it is reused
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            self.finished.set()

    def _read_available(self) -> None:
        """Read until the pipe is empty. A read that returns less than it asked for has
        emptied the pipe (a pipe read takes every buffered byte up to the size asked), so
        it ends the loop: asking again would only raise ``BlockingIOError``, a third of
        the cost of a one-line read, paid on every line a function prints alone."""
        while not self._eof:
            try:
                chunk = os.read(self._fd, READ_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                self._eof = True
                return
            if not chunk:
                self._eof = True
                return
            self._split(chunk)
            if len(chunk) < READ_BYTES:
                return

    def _split(self, chunk: bytes) -> None:
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        complete, rest = data[:end], data[end:]
        pieces = [complete] if complete else []
        while len(rest) > MAX_LINE_BYTES:
            pieces.append(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        self._partial = rest
        if pieces:
            self._emit(pieces)

    def _emit(self, pieces: list[bytes]) -> None:
        """Decode and split each piece into lines (``\\n`` kept; a piece without one
        is a line of its own). Decoding whole pieces is safe: ``\\n`` never occurs
        inside a UTF-8 sequence."""
        lines: list[str] = []
        for piece in pieces:
            text = piece.decode("utf-8", errors="replace")
            parts = text.split("\n")
            lines.extend(part + "\n" for part in parts[:-1])
            if parts[-1]:
                lines.append(parts[-1])
        if lines:
            self._on_lines(lines)


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        cwd: str | None,
        on_lines: LinesSink,
        on_exit: ExitSink,
    ) -> None:
        self.name = name
        read_fd, write_fd = os.pipe()
        try:
            self._popen = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.pid = self._popen.pid
        self.output = OutputReader(read_fd, on_lines, name)
        self._on_exit = on_exit
        self._waiter = threading.Thread(target=self._wait, name=f"wait-{name}", daemon=True)
        self._waiter.start()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _wait(self) -> None:
        code = self._popen.wait()
        self._on_exit(self, code)

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def freeze(self) -> None:
        self.signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal_group(signal.SIGCONT)

    def kill(self) -> None:
        # A stopped process would not die of SIGKILL any later, but SIGCONT first
        # lets the kernel reap it at once.
        self.signal_group(signal.SIGKILL)
        self.signal_group(signal.SIGCONT)

    def wait_exit(self, timeout: float) -> bool:
        self._waiter.join(timeout)
        return not self._waiter.is_alive()


def describe_exit(code: int) -> str:
    """The wording of Go's ``ProcessState.String()``, which RAPID puts in its errors."""
    if code >= 0:
        return f"exit status {code}"
    names = {
        signal.SIGKILL: "killed",
        signal.SIGTERM: "terminated",
        signal.SIGSEGV: "segmentation fault",
        signal.SIGABRT: "aborted",
        signal.SIGINT: "interrupt",
        signal.SIGBUS: "bus error",
    }
    return f"signal: {names.get(signal.Signals(-code), signal.Signals(-code).name)}"


def peak_memory_kib(root_pids: Sequence[int]) -> int:
    """Sum of the peak resident set (VmHWM) of every live process in the trees.

    Lambda reports the environment's peak memory; summing each process's own peak
    over the runtime's and the extensions' process trees is the closest thing /proc
    offers without a cgroup per sandbox. Walking ``children`` files is much cheaper
    than scanning all of /proc on every report.
    """
    total = 0
    pending = list(root_pids)
    seen: set[int] = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _vm_hwm_kib(pid)
        pending.extend(_children(pid))
    return total


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return found
