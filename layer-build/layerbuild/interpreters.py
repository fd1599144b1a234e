"""Find one CPython per Lambda Python version on this machine, to precompile bytecode with.

Bytecode is specific to a minor version, so the layer can only carry .pyc files for versions that
are installed where it is built. Probing an interpreter costs a process start, so results are
cached by the executable's identity (path, size, mtime).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .runtimes import RUNTIME_PYTHONS

_PROBE = "import sys; v = sys.version_info; print(sys.implementation.name, v.major, v.minor, v.micro)"
_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Interpreter:
    executable: Path
    version: str  # "3.12"
    full_version: str  # "3.12.1"


def find_interpreters(cache_file: Path) -> list[Interpreter]:
    """One interpreter per runtime version found, in version order; the first candidate wins."""
    cache = _load_cache(cache_file)
    found: dict[str, Interpreter] = {}
    for candidate in _candidates():
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        wanted_version = _version_from_name(candidate)
        if wanted_version is not None and wanted_version in found:
            continue
        interpreter = _probe(candidate, cache)
        if interpreter is not None and interpreter.version in RUNTIME_PYTHONS:
            found.setdefault(interpreter.version, interpreter)
    _store_cache(cache_file, cache)
    return [found[version] for version in RUNTIME_PYTHONS if version in found]


def _candidates() -> list[Path]:
    """Real installations before PATH shims (a pyenv shim only works for the selected version)."""
    candidates: list[Path] = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version in RUNTIME_PYTHONS:
        # Newest patch release first (3.12.10 before 3.12.9; suffixed builds such as 3.13.0t last),
        # so the choice is stable between builds.
        installs = pyenv_root.glob(f"versions/{version}.*/bin/python{version}")
        candidates.extend(sorted(installs, key=_release_order, reverse=True))
    for version in RUNTIME_PYTHONS:
        on_path = shutil.which(f"python{version}")
        if on_path:
            candidates.append(Path(on_path))
    candidates.append(Path(sys.executable))
    return candidates


def _release_order(executable: Path) -> tuple[int, ...]:
    release = executable.parent.parent.name  # versions/<release>/bin/pythonX.Y
    return tuple(int(part) if part.isdigit() else -1 for part in release.split("."))


def _version_from_name(path: Path) -> str | None:
    name = path.name.removeprefix("python")
    return name if name in RUNTIME_PYTHONS else None


def _probe(candidate: Path, cache: dict[str, list[str]]) -> Interpreter | None:
    resolved = candidate.resolve()
    with open(resolved, "rb") as executable:
        is_binary = executable.read(4) == _ELF_MAGIC
    stat = resolved.stat()
    key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    # Only real binaries are cached: a shim script answers differently as the environment changes.
    if is_binary and key in cache:
        implementation, version, full_version = cache[key]
    else:
        try:
            result = subprocess.run(
                [str(candidate), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        fields = result.stdout.split()
        if result.returncode != 0 or len(fields) != 4:
            return None
        implementation, version = fields[0], f"{fields[1]}.{fields[2]}"
        full_version = f"{version}.{fields[3]}"
        if is_binary:
            cache[key] = [implementation, version, full_version]
    if implementation != "cpython":
        return None
    return Interpreter(resolved if is_binary else candidate, version, full_version)


def _load_cache(cache_file: Path) -> dict[str, list[str]]:
    try:
        loaded = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _store_cache(cache_file: Path, cache: dict[str, list[str]]) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        temporary.write_text(json.dumps(cache, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, cache_file)
    except OSError:
        pass  # the cache only saves time
