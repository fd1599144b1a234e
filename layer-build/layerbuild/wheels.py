"""Fetch the pinned wheels for one architecture (cached) and unpack them into the layer tree."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from .architectures import Architecture
from .errors import LayerBuildError
from .pins import Pin
from .progress import Progress
from .runtimes import OLDEST_RUNTIME_PYTHON, RUNTIME_PYTHONS
from .wheeltags import WheelName, normalize_name

# RECORD lists hashes of the wheel's files only (our .pyc files would make it wrong) and
# INSTALLER/REQUESTED/direct_url.json describe a pip install that did not happen.
_DROPPED_DIST_INFO_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


@dataclass(frozen=True)
class InstalledDistribution:
    name: str
    version: str
    requires: tuple[str, ...]
    files: tuple[str, ...]  # POSIX paths relative to the site directory


def fetch_wheels(arch: Architecture, pins: tuple[Pin, ...], cache: Path, progress: Progress) -> list[Path]:
    """Return one usable wheel per pin, downloading only those not already in `cache/<arch>/`."""
    arch_cache = cache / arch.name
    arch_cache.mkdir(parents=True, exist_ok=True)
    missing = [pin for pin in pins if _cached_wheel(arch_cache, pin, arch) is None]
    if missing:
        progress.step(f"[{arch.name}] downloading {' '.join(pin.requirement for pin in missing)}")
        _download(missing, arch, arch_cache)
    else:
        progress.step(f"[{arch.name}] using cached wheels from {arch_cache}")
    wheels = []
    for pin in pins:
        wheel = _cached_wheel(arch_cache, pin, arch)
        if wheel is None:
            raise LayerBuildError(f"pip did not produce a usable {pin.requirement} wheel for {arch.name}")
        wheels.append(wheel)
    return wheels


def _cached_wheel(arch_cache: Path, pin: Pin, arch: Architecture) -> Path | None:
    for candidate in sorted(arch_cache.glob("*.whl")):
        try:
            name = WheelName.parse(candidate.name)
        except ValueError:
            continue
        if (name.distribution, name.version) != (normalize_name(pin.name), pin.version):
            continue
        if name.unusable_reason(arch) is None:
            return candidate
    return None


def _download(pins: list[Pin], arch: Architecture, arch_cache: Path) -> None:
    if importlib.util.find_spec("pip") is None:
        raise LayerBuildError(f"pip is not installed in {sys.executable}; it is needed to fetch wheels")
    oldest = ".".join(str(part) for part in OLDEST_RUNTIME_PYTHON)
    with tempfile.TemporaryDirectory(dir=arch_cache, prefix=".download-") as staging:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-input", "--no-deps", "--only-binary=:all:",
            "--platform", arch.pip_platform, "--implementation", "cp", "--python-version", oldest,
            "--dest", staging,
            *(pin.requirement for pin in pins),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last_lines = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise LayerBuildError(f"pip download for {arch.name} failed: {last_lines}")
        for wheel in sorted(Path(staging).glob("*.whl")):
            reason = WheelName.parse(wheel.name).unusable_reason(arch)
            if reason is not None:
                raise LayerBuildError(f"{wheel.name} cannot go in the {arch.name} layer: {reason}")
            # Publish into the cache only once complete, so a concurrent build never sees half a file.
            os.replace(wheel, arch_cache / wheel.name)


def install_wheel(
    wheel: Path, site_dir: Path, unshipped: frozenset[str] = frozenset()
) -> InstalledDistribution:
    """Unpack `wheel` into `site_dir` the way pip lays out purelib/platlib, minus install records.

    `unshipped` names files (site-relative POSIX paths) to leave out.
    """
    files = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            relative = _target_path(member.filename, wheel)
            if relative is None or relative.as_posix() in unshipped:
                continue
            files.append(relative.as_posix())
            target = site_dir.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
    return _read_distribution(wheel, site_dir, tuple(sorted(files)))


def _target_path(member: str, wheel: Path) -> PurePosixPath | None:
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts:
        raise LayerBuildError(f"{wheel.name} contains an unsafe path {member!r}")
    top = path.parts[0]
    if top.endswith(".dist-info") and path.name in _DROPPED_DIST_INFO_FILES:
        return None
    if top.endswith(".data"):
        # purelib/platlib belong in site-packages; scripts/headers/data have no place in a layer.
        if len(path.parts) > 2 and path.parts[1] in ("purelib", "platlib"):
            return PurePosixPath(*path.parts[2:])
        raise LayerBuildError(f"{wheel.name} installs {member!r} outside site-packages; not supported")
    return path


def _read_distribution(wheel: Path, site_dir: Path, files: tuple[str, ...]) -> InstalledDistribution:
    name = WheelName.parse(wheel.name)
    dist_info = [
        p for p in site_dir.glob("*.dist-info") if normalize_name(p.name).startswith(name.distribution)
    ]
    for candidate in dist_info:
        metadata = HeaderParser().parsestr((candidate / "METADATA").read_text(encoding="utf-8"))
        if normalize_name(metadata["Name"]) == name.distribution:
            requires = tuple(metadata.get_all("Requires-Dist") or ())
            return InstalledDistribution(metadata["Name"], metadata["Version"], requires, files)
    raise LayerBuildError(f"{wheel.name} has no readable METADATA")


def check_dependencies_pinned(distributions: list[InstalledDistribution], pins: tuple[Pin, ...]) -> None:
    """Fail if a shipped distribution needs something, on some runtime, that the layer lacks."""
    pinned = {normalize_name(pin.name) for pin in pins}
    for dist in distributions:
        for requirement in dist.requires:
            spec, _, marker = requirement.partition(";")
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
            if match is None or normalize_name(match.group(1)) in pinned:
                continue
            if not _marker_may_apply(marker.strip()):
                continue
            raise LayerBuildError(
                f"{dist.name} {dist.version} requires {requirement.strip()!r}, which the layer does not "
                "ship; add it to layer-build/layerbuild/pins.py"
            )


def _marker_may_apply(marker: str) -> bool:
    """Whether a Requires-Dist marker is true on any Lambda Python runtime (Linux, CPython 3.10+)."""
    if not marker:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:
        # Without `packaging` we cannot evaluate markers; assume the dependency is needed.
        return True
    parsed = Marker(marker)
    for python in RUNTIME_PYTHONS:
        for machine in ("x86_64", "aarch64"):
            environment = {
                "python_version": python,
                "python_full_version": f"{python}.0",
                "implementation_name": "cpython",
                "platform_python_implementation": "CPython",
                "sys_platform": "linux",
                "platform_system": "Linux",
                "os_name": "posix",
                "platform_machine": machine,
                "extra": "",
            }
            if parsed.evaluate(environment):
                return True
    return False
