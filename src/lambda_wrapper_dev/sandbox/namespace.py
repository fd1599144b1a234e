"""Where the environment's processes run: a shared read-only Lambda layout, or the host.

``NamespaceLayout`` (root): one long-lived holder process owns a private mount
namespace with ``/var/task``, ``/opt`` and ``/var/runtime`` read-only and ``/tmp``
bound to the function's tmp dir (``mounts.py``), plus an ``/etc/hosts`` naming
``sandbox.localdomain`` as on Lambda. The runtime and every extension enter it with
``nsenter``, which execs, so each keeps the PID we started and can be signalled.
The holder reads its stdin; when the sandbox goes away, the pipe closes and the
holder exits.

``HostLayout`` (no root): processes run where the files really are. The bootstrap
twin ``bootstrap-local`` and ``_LAMBDA_SANDBOX_OPT_DIR`` stand in for the mounts;
nothing is read-only, so ``TaskRootGuard`` detects writes instead.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .mounts import Bind, Tmpfs, mount_script

HOSTS_FILE = "127.0.0.1\tlocalhost sandbox.localdomain sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"


@dataclass(frozen=True)
class Paths:
    """How the sandbox's fixed places are named for the processes."""

    task_root: str
    opt_dir: str
    runtime_dir: str
    tmp_dir: str


class HostLayout:
    namespace_mode = False

    def __init__(self, task_root: Path, opt_dir: Path, runtime_dir: Path, tmp_dir: Path) -> None:
        self.paths = Paths(str(task_root), str(opt_dir), str(runtime_dir), str(tmp_dir))

    def argv(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    @property
    def cwd(self) -> str | None:
        return self.paths.task_root

    def close(self) -> None:
        pass


class NamespaceLayout:
    namespace_mode = True

    def __init__(self, binds: Sequence[Bind | Tmpfs], state_dir: Path) -> None:
        self.paths = Paths("/var/task", "/opt", "/var/runtime", "/tmp")
        hosts = state_dir / "hosts"
        hosts.write_text(HOSTS_FILE)
        script = [*mount_script([*binds, Bind(hosts, "/etc/hosts")]), "echo ready", "read _unused || true"]
        self._holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", "\n".join(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._holder.stdout is not None
        first_line = self._holder.stdout.readline()
        if first_line.strip() != b"ready":
            _, errors = self._holder.communicate(timeout=5)
            raise RuntimeError(
                f"could not lay out the sandbox's mount namespace: {errors.decode(errors='replace')}"
            )
        self._nsenter = shutil.which("nsenter") or "nsenter"

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [self._nsenter, "-t", str(self._holder.pid), "-m", "--wdns=/var/task", "--", *argv]

    @property
    def cwd(self) -> str | None:
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._holder.stdin is not None:
                self._holder.stdin.close()
        try:
            self._holder.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._holder.kill()
            self._holder.wait()
        for stream in (self._holder.stdout, self._holder.stderr):
            if stream is not None:
                stream.close()


Layout = HostLayout | NamespaceLayout
