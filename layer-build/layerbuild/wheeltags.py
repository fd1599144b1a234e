"""Read a wheel's file name and decide whether one copy of it serves every Lambda Python runtime.

The layer is one zip per architecture for python3.10 ... python3.14, so a wheel is only usable if
it is pure Python, or a stable-ABI (abi3) build for CPython <= 3.10 with a manylinux tag whose
glibc is old enough for Amazon Linux 2 (python3.10/3.11 runtimes, glibc 2.26).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .architectures import Architecture
from .runtimes import OLDEST_RUNTIME_GLIBC, OLDEST_RUNTIME_PYTHON

_LEGACY_MANYLINUX_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_PEP600 = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_LEGACY = re.compile(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)")
_CPYTHON = re.compile(r"cp3(\d+)")


def normalize_name(name: str) -> str:
    """Wheel file names spell `typing-extensions` as `typing_extensions`; compare in one form."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass(frozen=True)
class WheelName:
    distribution: str
    version: str
    python_tags: frozenset[str]
    abi_tags: frozenset[str]
    platform_tags: frozenset[str]

    @classmethod
    def parse(cls, filename: str) -> WheelName:
        if not filename.endswith(".whl"):
            raise ValueError(f"not a wheel file name: {filename}")
        parts = filename[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):  # the optional build tag makes six
            raise ValueError(f"malformed wheel file name: {filename}")
        python, abi, plat = (frozenset(tag.split(".")) for tag in parts[-3:])
        return cls(normalize_name(parts[0]), parts[1], python, abi, plat)

    def is_pure(self) -> bool:
        # "py2.py3" was split on the dot, so "py3" (or "py3N") is present for any Python 3 pure wheel.
        python3 = any(tag.startswith("py3") for tag in self.python_tags)
        return python3 and "none" in self.abi_tags and "any" in self.platform_tags

    def oldest_glibc_for(self, arch: Architecture) -> tuple[int, int] | None:
        """The lowest glibc any of the wheel's manylinux tags promises for `arch`, if any."""
        versions: list[tuple[int, int]] = []
        for tag in self.platform_tags:
            if match := _PEP600.fullmatch(tag):
                if match.group(3) == arch.wheel_machine:
                    versions.append((int(match.group(1)), int(match.group(2))))
            elif (match := _LEGACY.fullmatch(tag)) and match.group(2) == arch.wheel_machine:
                versions.append(_LEGACY_MANYLINUX_GLIBC[match.group(1)])
        return min(versions) if versions else None

    def unusable_reason(self, arch: Architecture) -> str | None:
        """Why this wheel cannot serve every runtime on `arch`, or None if it can."""
        if self.is_pure():
            return None
        if "abi3" not in self.abi_tags:
            return (
                f"not pure Python and not abi3 (abi {sorted(self.abi_tags)}): one copy cannot serve 3.10-3.14"
            )
        minors = [int(m.group(1)) for tag in self.python_tags if (m := _CPYTHON.fullmatch(tag))]
        if not minors or min(minors) > OLDEST_RUNTIME_PYTHON[1]:
            return f"abi3 wheel needs a newer CPython than 3.10 (tags {sorted(self.python_tags)})"
        glibc = self.oldest_glibc_for(arch)
        if glibc is None:
            return f"no manylinux tag for {arch.wheel_machine} (tags {sorted(self.platform_tags)})"
        if glibc > OLDEST_RUNTIME_GLIBC:
            return f"needs glibc {glibc[0]}.{glibc[1]}, newer than Amazon Linux 2's 2.26"
        return None
