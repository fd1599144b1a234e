"""Lambda's resource limits for one execution environment, with cgroup v1.

On Lambda the memory size caps the environment's memory (the kernel's OOM killer
ends a function that goes over: ``Runtime.OutOfMemory``), sets its CPU share (one
full vCPU at 1,769 MB, proportionally less below), and a frozen environment is
frozen by the kernel. As root, each ``Sandbox`` gets one cgroup per controller:

- ``memory``: ``memory.limit_in_bytes`` = the memory size. The peak
  (``memory.max_usage_in_bytes``) is the report's ``maxMemoryUsedMB`` and an
  OOM kill shows in ``memory.oom_control`` (``oom_kill``).
- ``cpu``: ``cpu.cfs_quota_us`` = period * memory / 1769 (at least the kernel's
  1 ms minimum), i.e. the fraction of a vCPU Lambda gives that memory size.
- ``freezer``: ``FROZEN``/``THAWED``, which stops every task of the environment,
  children that left the process group included.

Each cgroup is created below the cgroup this process is in (the machine may
already hold us in a memory sub-cgroup: our limits then nest inside it). The
runtime and the extensions join before they exec anything: they are started
through a ``/bin/sh`` shim that writes its own pid into each ``cgroup.procs``
and then execs the real command, so the pid stays the one we signal. The cgroups
are removed at shutdown (any task left is killed first); ones left behind by a
sandbox process that died are removed by the next sandbox.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import time
import uuid
from pathlib import Path

import structlog

from lambda_wrapper.export.readback import process_alive

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "freezer")
# A file that only a usable v1 hierarchy of each controller has (at its root).
MARKERS = {"memory": "memory.limit_in_bytes", "cpu": "cpu.cfs_quota_us", "freezer": "cgroup.procs"}
FULL_VCPU_MB = 1769
CFS_PERIOD_US = 100_000
MIN_QUOTA_US = 1000  # the kernel refuses smaller quotas
PREFIX = "lambda-sandbox-"
ENV_SWITCH = "LAMBDA_SANDBOX_CGROUPS"
FREEZE_TIMEOUT_S = 2.0
EMPTY_TIMEOUT_S = 2.0
FALLBACK = (
    "no per-environment cgroups ({reason}): memory is not limited, the CPU is not shared out "
    "by memory size, and freezing uses SIGSTOP"
)

log = structlog.get_logger("lambda_wrapper_dev.sandbox")
_fallback_reported = False


class CgroupError(RuntimeError):
    pass


def for_environment(memory_mb: int, wanted: bool | None) -> EnvironmentCgroups | None:
    """The environment's cgroups; None (said once per process) when they cannot be used.

    ``wanted``: None uses them when possible, True insists (raises ``CgroupError``),
    False does without (as if they were unavailable). With None, the environment
    variable ``LAMBDA_SANDBOX_CGROUPS`` (``0``/``1``) decides instead, so a whole
    run can be switched without touching the code that creates the sandboxes.
    """
    if wanted is None:
        wanted = {"0": False, "1": True}.get(os.environ.get(ENV_SWITCH, ""))
    reason = "turned off" if wanted is False else unavailable_reason()
    if reason is None:
        try:
            return EnvironmentCgroups(memory_mb)
        except CgroupError as error:
            if wanted:
                raise
            reason = str(error)
    elif wanted:
        raise CgroupError(reason)
    global _fallback_reported
    if not _fallback_reported:
        _fallback_reported = True
        log.warning(FALLBACK.format(reason=reason))
    return None


def cpu_quota_us(memory_mb: int, period_us: int = CFS_PERIOD_US) -> int:
    """Lambda's CPU share for a memory size, as a CFS quota per ``period_us``."""
    return max(MIN_QUOTA_US, round(period_us * memory_mb / FULL_VCPU_MB))


def own_cgroup(controller: str, proc_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's cgroup path in ``controller``'s v1 hierarchy ("/" if not listed)."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path or "/"
    return "/"


def unavailable_reason() -> str | None:
    """Why per-environment cgroups cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "cgroups need root"
    for controller in CONTROLLERS:
        root = CGROUP_ROOT / controller
        if not (root / MARKERS[controller]).exists():
            return f"no cgroup v1 '{controller}' hierarchy at {root}"
        parent = root / own_cgroup(controller).lstrip("/")
        if not os.access(parent, os.W_OK):
            return f"cannot create cgroups in {parent}"
    return None


class EnvironmentCgroups:
    """The memory, cpu and freezer cgroups of one execution environment."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.paths: dict[str, Path] = {}
        try:
            for controller in CONTROLLERS:
                parent = CGROUP_ROOT / controller / own_cgroup(controller).lstrip("/")
                remove_stale(parent)
                path = parent / self.name
                path.mkdir()
                self.paths[controller] = path
            self.memory_limit_bytes = memory_mb * 1024 * 1024
            _write(self.paths["memory"] / "memory.limit_in_bytes", self.memory_limit_bytes)
            self.set_cpu_unthrottled(False)
        except OSError as error:
            self.remove()
            raise CgroupError(f"could not set up the environment's cgroups: {error}") from error

    def describe(self) -> str:
        share = cpu_quota_us(self.memory_mb) / CFS_PERIOD_US
        return (
            f"cgroups: memory limited to {self.memory_mb} MB, CPU {share:.1%} of a vCPU "
            "(unthrottled during Init), kernel freezer"
        )

    # -- processes ----------------------------------------------------------------

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started through a shim that joins the cgroups, then execs it."""
        joins = " && ".join(
            f"echo $$ > {shlex.quote(str(path / 'cgroup.procs'))}" for path in self.paths.values()
        )
        script = (
            f'{joins} || {{ echo "lambda sandbox: could not join the cgroups" >&2; exit 126; }}; exec "$@"'
        )
        return ["/bin/sh", "-c", script, "lambda-sandbox-cgroups", *argv]

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError, ValueError):
            return [int(pid) for pid in (self.paths["memory"] / "cgroup.procs").read_text().split()]
        return []

    # -- CPU ------------------------------------------------------------------------

    def set_cpu_unthrottled(self, unthrottled: bool) -> None:
        """The memory size's CPU share, or no quota at all (Init's boost, see lifecycle)."""
        quota = -1 if unthrottled else cpu_quota_us(self.memory_mb)
        _write(self.paths["cpu"] / "cpu.cfs_period_us", CFS_PERIOD_US)
        _write(self.paths["cpu"] / "cpu.cfs_quota_us", quota)

    # -- memory ---------------------------------------------------------------------

    def reset_peak(self) -> None:
        """Start a new peak (a new runtime after a reset starts from nothing)."""
        with contextlib.suppress(OSError):
            _write(self.paths["memory"] / "memory.max_usage_in_bytes", 0)

    def peak_bytes(self) -> int:
        try:
            return int((self.paths["memory"] / "memory.max_usage_in_bytes").read_text())
        except (OSError, ValueError):
            return 0

    def oom_kills(self) -> int:
        """How many tasks the OOM killer ended in this cgroup so far.

        ``oom_kill`` in ``memory.oom_control`` (Linux 4.13+); older kernels only say
        ``under_oom``, and a limit that was hit (``memory.failcnt``) with the usage
        at the limit is the best sign left.
        """
        memory = self.paths["memory"]
        try:
            control = (memory / "memory.oom_control").read_text()
        except OSError:
            return 0
        found = re.search(r"^oom_kill (\d+)$", control, re.MULTILINE)
        if found:
            return int(found.group(1))
        with contextlib.suppress(OSError, ValueError):
            failed = int((memory / "memory.failcnt").read_text())
            if failed and self.peak_bytes() >= self.memory_limit_bytes:
                return 1
        return 0

    # -- freezer --------------------------------------------------------------------

    def freeze(self) -> bool:
        """Freeze every task; False if that failed or did not finish in time (the
        caller then falls back to SIGSTOP)."""
        return self._set_freezer("FROZEN")

    def thaw(self) -> bool:
        return self._set_freezer("THAWED")

    def _set_freezer(self, state: str) -> bool:
        path = self.paths["freezer"] / "freezer.state"
        deadline = time.monotonic() + FREEZE_TIMEOUT_S
        delay = 0.0005
        try:
            _write(path, state)
            # FREEZING is transitional: the kernel is still stopping tasks.
            while path.read_text().strip() != state:
                if time.monotonic() > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
        except OSError:
            return False
        return True

    # -- teardown -------------------------------------------------------------------

    def remove(self) -> None:
        """Kill whatever is left inside, then remove every cgroup (never raises)."""
        if "freezer" in self.paths:
            self.thaw()  # frozen tasks would not die
        for path in list(self.paths.values()):
            _empty_and_remove(path)
        self.paths.clear()


def remove_stale(parent: Path) -> None:
    """Remove cgroups that sandbox processes which no longer exist left in ``parent``."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = re.fullmatch(rf"{PREFIX}(\d+)-[0-9a-f]+", entry.name)
        if match is None or not entry.is_dir() or process_alive(int(match.group(1))):
            continue
        freezer = entry / "freezer.state"
        if freezer.exists():
            with contextlib.suppress(OSError):
                _write(freezer, "THAWED")
        _empty_and_remove(entry)


def _empty_and_remove(path: Path) -> None:
    deadline = time.monotonic() + EMPTY_TIMEOUT_S
    while True:
        try:
            pids = [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            # EBUSY until the killed tasks are gone.
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def _write(path: Path, value: object) -> None:
    with open(path, "w") as handle:
        handle.write(f"{value}\n")
