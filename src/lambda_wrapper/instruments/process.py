"""Per-invocation process metrics with psutil (``LAMBDA_WRAPPER_PROCESS_METRICS``).

psutil costs about 20 ms to import, so this module is imported only when the feature
is on. CPU time and GC figures are deltas over the invocation; RSS, fds, threads and
/tmp usage are values at its end; the peak RSS is per invocation where the kernel lets
us reset the high-water mark (see ``instruments``: procfs), else since the process started.

RSS, peak and threads come from one read of ``/proc/self/status`` kept open (``procfs``)
rather than psutil's ``oneshot`` (which opens and reads ``stat``, ``statm`` and
``status`` anew: about 70 µs on every invocation's path against about 8 µs).

CPU time comes from ``getrusage`` rather than psutil: psutil reads ``/proc/self/stat``,
whose clock ticks are 10 ms, while ``getrusage`` resolves microseconds, and most
invocations are shorter than a tick. Both count every thread of the process.
"""

from __future__ import annotations

import gc
import resource
import time

import psutil

from .. import aws
from . import mib, ms, self_status


class GcWatch:
    """Counts collections and their pause time through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.collections = 0
        self.pause_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def reset(self) -> None:
        self.collections = 0
        self.pause_s = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections += 1
            self.pause_s += time.perf_counter() - self._started

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


class ProcessMetrics:
    def __init__(self, status: int | None, tmp_dir: str | None = None) -> None:
        """``status``: ``/proc/self/status`` as ``open_self_proc`` opened it (the caller's)."""
        self.tmp_dir = tmp_dir or aws.tmp_dir()
        self._status = status
        self._process = psutil.Process()
        self._gc = GcWatch()
        self._cpu_at_start = resource.getrusage(resource.RUSAGE_SELF)

    def invocation_starts(self) -> None:
        self._cpu_at_start = resource.getrusage(resource.RUSAGE_SELF)
        self._gc.reset()

    def snapshot(self) -> dict[str, object]:
        """The ``process`` object of the ``lambda_wrapper.invocation`` record."""
        status = self_status(self._status)
        if status is None:
            raise OSError("/proc/self/status is not readable")
        rss, peak, threads = status
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        try:
            tmp_used: float | None = mib(psutil.disk_usage(self.tmp_dir).used)
        except OSError:
            tmp_used = None
        return {
            "rssMB": mib(rss),
            "peakRssMB": mib(peak),
            "cpuUserMs": ms(max(0.0, cpu.ru_utime - self._cpu_at_start.ru_utime)),
            "cpuSystemMs": ms(max(0.0, cpu.ru_stime - self._cpu_at_start.ru_stime)),
            "openFds": _open_fds(self._process),
            "threads": threads,
            "tmpUsedMB": tmp_used,
            "gcCollections": self._gc.collections,
            "gcPauseMs": ms(self._gc.pause_s),
        }

    def close(self) -> None:
        self._gc.close()


def _open_fds(process: psutil.Process) -> int | None:
    try:
        return int(process.num_fds())
    except psutil.Error:
        return None
