"""Where and with what a run happened: recorded with every result."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "uname": {
            "system": uname.system,
            "node": uname.node,
            "release": uname.release,
            "version": uname.version,
            "machine": uname.machine,
        },
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "load_average": list(os.getloadavg()),
    }


def python_info() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def short_description(machine: dict[str, Any]) -> str:
    """One line for the table's heading, e.g. "Intel Xeon ..., 2 CPUs, Linux 6.1 x86_64"."""
    uname = machine.get("uname", {})
    return (
        f"{machine.get('cpu_model', 'unknown CPU')}, {machine.get('nproc', '?')} CPUs, "
        f"{uname.get('system', '')} {uname.get('release', '')} {uname.get('machine', '')}"
    ).strip()
