"""Memory figures straight from /proc: cheap enough for a watchdog, and no psutil.

Reading ``/proc/self/statm`` costs about 10 µs, ``/proc/self/status`` about 35 µs. The
peak RSS (``VmHWM``) can be reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs`` (Linux 4.0+, about 10 µs), which turns the process-lifetime
peak into a per-invocation one.
"""

from __future__ import annotations

import os

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes() -> int | None:
    """The RSS high-water mark, ``VmHWM``.

    Not ``getrusage``'s ``ru_maxrss``: the kernel also folds the high-water mark into
    it whenever a thread exits, and ``clear_refs`` cannot reset that part.
    """
    try:
        with open("/proc/self/status", "rb") as status:
            text = status.read()
        start = text.index(b"VmHWM:") + 6
        return int(text[start : text.index(b"kB", start)]) * 1024
    except (OSError, ValueError):
        return None


def reset_peak_rss() -> bool:
    """Make ``peak_rss_bytes`` start again from the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "wb", buffering=0) as clear_refs:
            clear_refs.write(b"5")
        return True
    except OSError:
        return False
