"""Lay out Lambda's file system for one process tree, in a private mount namespace.

On Lambda the function code sits read-only at ``/var/task``, layers read-only at
``/opt``, the runtime at ``/var/runtime``, and only ``/tmp`` is writable. As root we
rebuild exactly that with ``unshare -m`` and bind mounts, so a function (or our
wrapper) writing to its code directory fails with EROFS as it would on Lambda. The
host's own ``/var`` and ``/opt`` are never modified: ``/var`` is covered by a tmpfs
inside the namespace, and the mount points are created there.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path


class Bind:
    def __init__(self, source: Path | str, target: str, readonly: bool = True) -> None:
        self.source = str(source)
        self.target = target
        self.readonly = readonly


class Tmpfs:
    """An empty directory, read-only once everything is mounted into it (a composed ``/opt``)."""

    def __init__(self, target: str) -> None:
        self.target = target


def namespaces_available() -> bool:
    """True when we can build the read-only layout (root and util-linux ``unshare``)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("mount") is not None


def lambda_binds(task_root: Path, layer_dir: Path | None, runtime_dir: Path, tmp_dir: Path,
                 empty_dir: Path) -> list[Bind]:
    """The standard layout: code, layers and runtime read-only, ``/tmp`` writable."""
    return [
        Bind(task_root, "/var/task"),
        Bind(layer_dir or empty_dir, "/opt"),
        Bind(runtime_dir, "/var/runtime"),
        Bind(tmp_dir, "/tmp", readonly=False),
    ]


def composed_opt(layer_dir: Path | None, extensions_dir: Path) -> list[Bind | Tmpfs]:
    """``/opt`` as the layer's entries plus a given ``extensions`` dir, all read-only.

    Used when the extensions come from elsewhere than the layer: a read-only layer
    bind has no mount point for them, so ``/opt`` becomes a tmpfs holding one bind per
    layer entry, made read-only after the last one.
    """
    items: list[Bind | Tmpfs] = [Tmpfs("/opt")]
    if layer_dir is not None:
        items += [Bind(entry, f"/opt/{entry.name}") for entry in sorted(layer_dir.iterdir())
                  if entry.name != "extensions"]
    items.append(Bind(extensions_dir, "/opt/extensions"))
    return items


def mount_script(binds: Sequence[Bind | Tmpfs]) -> list[str]:
    """Shell lines that apply ``binds`` in the current (private) mount namespace.

    A bind whose source is a file (e.g. an ``/etc/hosts``) is mounted over a file.
    """
    # Sources may live under /var or /tmp, which get covered: pin each one to a
    # staging mount first, then bind from there.
    lines = ["set -e", "src_base=$(mktemp -d /dev/shm/lambda-sandbox.XXXXXX)"]
    for index, bind in enumerate(binds):
        if isinstance(bind, Tmpfs):
            continue
        make = "touch" if os.path.isfile(bind.source) else "mkdir -p"
        lines.append(f"{make} \"$src_base/{index}\"")
        lines.append(f"mount --bind {shlex.quote(bind.source)} \"$src_base/{index}\"")
    lines.append("mount -t tmpfs -o mode=0755 lambda-var /var")
    read_only_later: list[str] = []
    for index, bind in enumerate(binds):
        target = shlex.quote(bind.target)
        if isinstance(bind, Tmpfs):
            lines.append(f"mkdir -p {target}")
            lines.append(f"mount -t tmpfs -o mode=0755 lambda-tmpfs {target}")
            read_only_later.append(f"mount -o remount,ro {target}")
            continue
        if os.path.isfile(bind.source):
            parent = shlex.quote(os.path.dirname(bind.target) or "/")
            lines.append(f"[ -e {target} ] || {{ mkdir -p {parent} && touch {target}; }}")
        else:
            lines.append(f"[ -e {target} ] || mkdir -p {target}")
        lines.append(f"mount --bind \"$src_base/{index}\" {target}")
        if bind.readonly:
            lines.append(f"mount -o remount,ro,bind {target}")
        lines.append(f"umount \"$src_base/{index}\"")
    lines += read_only_later
    lines.append("rm -rf \"$src_base\"")
    return lines


def namespace_argv(binds: Sequence[Bind | Tmpfs], argv: Sequence[str], cwd: str = "/var/task") -> list[str]:
    """Command line that runs ``argv`` inside a fresh namespace with ``binds`` applied.

    ``unshare`` and ``sh`` both ``exec`` onwards, so ``argv`` ends up with the PID the
    caller started, which is what the platform signals and freezes.
    """
    lines = mount_script(binds)
    lines.append(f"cd {shlex.quote(cwd)}")
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "lambda-sandbox", *argv]
