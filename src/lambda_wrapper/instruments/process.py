"""Per-invocation process metrics (``LAMBDA_WRAPPER_PROCESS_METRICS``).

This module is imported only when the feature is on, and it does not import psutil
(about 20 ms of Init) unless a figure can be had no other way: /proc gives all of them
wherever it can be opened, as on Lambda. CPU time and GC figures are deltas over the
invocation; RSS, fds, threads and /tmp usage are values at its end; the peak RSS is per
invocation where the kernel lets us reset the high-water mark (see ``instruments``:
procfs), else since the process started.

The snapshot runs on the handler's path on every invocation, where each system call
costs several times what it does in a loop (caches are cold after the wait for the
event), so it makes as few as it can, through descriptors kept open: RSS, peak and
threads from one read of ``/proc/self/status`` (``procfs``; psutil's ``oneshot`` opens
and reads ``stat``, ``statm`` and ``status``), the open descriptors by listing
``/proc/self/fd`` (psutil's ``num_fds`` looks ``/proc/<pid>/fd`` up by path each time;
the count is the same, the listing's own descriptor counted either way), /tmp usage by
``fstatvfs`` with psutil's ``disk_usage`` formula. psutil is left for what cannot be
opened so, and imported only then. The supervisor's time per warm invocation with this feature on, measured in
the sandbox: 0.17 ms with psutil's calls, 0.08-0.10 ms this way (0.02-0.04 ms of it the
defaults').

CPU time comes from ``getrusage`` rather than psutil: psutil reads ``/proc/self/stat``,
whose clock ticks are 10 ms, while ``getrusage`` resolves microseconds, and most
invocations are shorter than a tick. Both count every thread of the process.
"""

from __future__ import annotations

import gc
import os
import resource
import time

from .. import aws
from . import mib, ms, self_status


class ProcessMetrics:
    def __init__(self, status: int | None, tmp_dir: str | None = None) -> None:
        """``status``: ``/proc/self/status`` as ``open_self_proc`` opened it (the caller's)."""
        self.tmp_dir = tmp_dir or aws.tmp_dir()
        self._status = status
        self._fd_dir = _open_directory("/proc/self/fd")
        self._tmp = _open_directory(self.tmp_dir)
        # Collections since the invocation started and their pause, counted by ``_on_gc``
        # from ``gc.callbacks`` (kept here: a class of their own costs Init ~80k instructions).
        self.gc_collections = 0
        self.gc_pause_s = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)
        self._cpu_at_start = resource.getrusage(resource.RUSAGE_SELF)

    def invocation_starts(self) -> None:
        self._cpu_at_start = resource.getrusage(resource.RUSAGE_SELF)
        self.gc_collections = 0
        self.gc_pause_s = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_collections += 1
            self.gc_pause_s += time.perf_counter() - self._gc_started

    def snapshot(self) -> dict[str, object]:
        """The ``process`` object of the ``lambda_wrapper.invocation`` record."""
        status = self_status(self._status)
        if status is None:
            raise OSError("/proc/self/status is not readable")
        rss, peak, threads = status
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        try:
            tmp = os.fstatvfs(self._tmp) if self._tmp is not None else os.statvfs(self.tmp_dir)
            tmp_used: float | None = mib((tmp.f_blocks - tmp.f_bfree) * tmp.f_frsize)  # psutil's "used"
        except OSError:
            tmp_used = None
        return {
            "rssMB": mib(rss),
            "peakRssMB": mib(peak),
            "cpuUserMs": ms(max(0.0, cpu.ru_utime - self._cpu_at_start.ru_utime)),
            "cpuSystemMs": ms(max(0.0, cpu.ru_stime - self._cpu_at_start.ru_stime)),
            "openFds": self._open_fds(),
            "threads": threads,
            "tmpUsedMB": tmp_used,
            "gcCollections": self.gc_collections,
            "gcPauseMs": ms(self.gc_pause_s),
        }

    def _open_fds(self) -> int | None:
        if self._fd_dir is None:
            return _open_fds_by_psutil()
        try:
            return len(os.listdir(self._fd_dir))
        except OSError:
            return None

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        for fd in (self._fd_dir, self._tmp):
            if fd is not None:
                os.close(fd)
        self._fd_dir = self._tmp = None


def _open_directory(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _open_fds_by_psutil() -> int | None:
    """Where ``/proc/self/fd`` could not be kept open: psutil's count, which looks the
    directory up by path each time (or None, psutil missing from a hand-built layer)."""
    try:
        import psutil

        return int(psutil.Process().num_fds())
    except Exception:  # ImportError, psutil.Error, OSError: a missing figure, not a failure
        return None
