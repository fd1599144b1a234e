"""Write detection for the read-only places when no mount namespace is available.

Without root the task root and the layer cannot be made read-only, so a function
that writes there would work locally and fail with EROFS on Lambda. The guard
snapshots every path with its size, mtime and mode, and compares after each
invoke; any difference is reported as a violation. ``__pycache__`` is ignored:
the interpreter writes bytecode wherever it can and silently skips it on a
read-only file system, so it is not a behaviour difference that matters.
"""

from __future__ import annotations

import os
from pathlib import Path

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(root: Path) -> Snapshot:
    entries: Snapshot = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [name for name in subdirs if name != "__pycache__"]
        for name in [*subdirs, *files]:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            entries[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return entries


class TaskRootGuard:
    def __init__(self, roots: dict[str, Path]) -> None:
        """``roots`` maps the name a function sees (``/var/task``) to the real directory."""
        self._roots = roots
        self._snapshots = {name: snapshot(path) for name, path in roots.items()}

    def check(self) -> list[str]:
        """Describe every change since the last check, and take a new snapshot."""
        violations: list[str] = []
        for name, path in self._roots.items():
            before, after = self._snapshots[name], snapshot(path)
            for relative in sorted(after.keys() - before.keys()):
                violations.append(f"created {name}/{relative}")
            for relative in sorted(before.keys() - after.keys()):
                violations.append(f"removed {name}/{relative}")
            for relative in sorted(before.keys() & after.keys()):
                if before[relative] != after[relative]:
                    violations.append(f"modified {name}/{relative}")
            self._snapshots[name] = after
        return [f"write to read-only {item} (this fails with EROFS on Lambda)" for item in violations]
