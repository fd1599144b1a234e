"""The two Lambda architectures and what each means for wheels and ELF files."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from .errors import LayerUsageError


@dataclass(frozen=True)
class Architecture:
    name: str  # Lambda's spelling, used in file names and CompatibleArchitectures
    wheel_machine: str  # the machine suffix of manylinux wheel platform tags
    pip_platform: str  # what `pip download --platform` is given
    elf_machine: int  # e_machine of native extensions built for it


X86_64 = Architecture("x86_64", "x86_64", "manylinux2014_x86_64", 62)
ARM64 = Architecture("arm64", "aarch64", "manylinux2014_aarch64", 183)
ARCHITECTURES = {arch.name: arch for arch in (X86_64, ARM64)}

# platform.machine() spellings seen on Linux and macOS hosts.
_HOST_ALIASES = {"x86_64": X86_64, "amd64": X86_64, "aarch64": ARM64, "arm64": ARM64}


def host_architecture() -> Architecture:
    machine = platform.machine().lower()
    try:
        return _HOST_ALIASES[machine]
    except KeyError:
        raise LayerUsageError(
            f"host machine {machine!r} is not a Lambda architecture; pass --arch x86_64 or --arch arm64"
        ) from None


def resolve_architecture(name: str | None) -> Architecture:
    if name is None:
        return host_architecture()
    try:
        return ARCHITECTURES[name]
    except KeyError:
        choices = ", ".join(ARCHITECTURES)
        raise LayerUsageError(f"unknown architecture {name!r} (choose from {choices})") from None


def resolve_architectures(name: str | None) -> list[Architecture]:
    """`all` means every Lambda architecture; anything else is one architecture."""
    if name == "all":
        return list(ARCHITECTURES.values())
    return [resolve_architecture(name)]
