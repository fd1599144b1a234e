"""Per-invocation process metrics with psutil (``LAMBDA_WRAPPER_PROCESS_METRICS``).

psutil costs about 20 ms to import, so this module is imported only when the feature
is on. CPU time and GC figures are deltas over the invocation; RSS, fds, threads and
/tmp usage are values at its end; the peak RSS is per invocation where the kernel lets
us reset the high-water mark (see ``instruments``: procfs), else since the process started.

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
from . import mib, ms, peak_rss_bytes


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
    def __init__(self, tmp_dir: str | None = None) -> None:
        self.tmp_dir = tmp_dir or aws.tmp_dir()
        self._process = psutil.Process()
        self._gc = GcWatch()
        self._cpu_at_start = resource.getrusage(resource.RUSAGE_SELF)

    def invocation_starts(self) -> None:
        self._cpu_at_start = resource.getrusage(resource.RUSAGE_SELF)
        self._gc.reset()

    def snapshot(self) -> dict[str, object]:
        """The ``process`` object of the ``lambda_wrapper.invocation`` record."""
        process = self._process
        with process.oneshot():
            rss = process.memory_info().rss
            threads = process.num_threads()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        try:
            tmp_used: float | None = mib(psutil.disk_usage(self.tmp_dir).used)
        except OSError:
            tmp_used = None
        return {
            "rssMB": mib(rss),
            "peakRssMB": mib(max(rss, peak_rss_bytes() or 0)),
            "cpuUserMs": ms(max(0.0, cpu.ru_utime - self._cpu_at_start.ru_utime)),
            "cpuSystemMs": ms(max(0.0, cpu.ru_stime - self._cpu_at_start.ru_stime)),
            "openFds": _open_fds(process),
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
