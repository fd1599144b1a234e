"""`layer build`: one deterministic zip plus manifest per architecture, or one unzipped tree."""

from __future__ import annotations

import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .architectures import Architecture, resolve_architecture, resolve_architectures
from .errors import LayerBuildError, LayerUsageError
from .inputs import LayerInputs
from .interpreters import find_interpreters
from .layerdir import build_layer_dir
from .manifest import build_manifest, manifest_path_for, write_manifest
from .progress import STDERR, Progress
from .tree import assemble_tree, warn_about_runtimes_without_bytecode
from .zipper import write_zip

# Ours is a small layer; the gate catches an accidental dependency or data file early, far below
# Lambda's own 50 MB upload / 250 MB unzipped limits that users share with their other layers.
MAX_ZIP_BYTES = 2_097_152
FORMATS = ("zip", "dir")
DEFAULT_OUT = Path("dist")


@dataclass(frozen=True)
class LayerArtifact:
    arch: str
    zip_path: Path
    manifest_path: Path
    sha256: str
    size: int


def zip_name(version: str, arch: str) -> str:
    return f"lambda-wrapper-{version}-{arch}.zip"


def build(
    arch: str | None = None,
    format: str = "zip",
    out: Path | str | None = None,
    *,
    inputs: LayerInputs | None = None,
    progress: Progress = STDERR,
) -> list[Path]:
    """Build the layer; returns the zip paths, or `[out]` for the dir format.

    `arch` is "x86_64", "arm64", "all" (zip only) or None for the host's architecture.
    The dir format writes the tree (what /opt holds) at `out` itself.
    """
    inputs = inputs or LayerInputs.from_repo()
    if format == "zip":
        artifacts = build_zips(
            resolve_architectures(arch), Path(out or DEFAULT_OUT), inputs=inputs, progress=progress
        )
        return [artifact.zip_path for artifact in artifacts]
    if format == "dir":
        if arch == "all":
            raise LayerUsageError("--format dir builds one architecture; pick --arch x86_64 or --arch arm64")
        target = resolve_architecture(arch)
        if out is None:
            inputs.check()
            out = DEFAULT_OUT / zip_name(inputs.package_version(), target.name).removesuffix(".zip")
        return [build_layer_dir(Path(out), target.name, inputs=inputs, progress=progress)]
    raise LayerUsageError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")


def build_zips(
    archs: list[Architecture],
    out_dir: Path,
    *,
    inputs: LayerInputs | None = None,
    progress: Progress = STDERR,
    max_zip_bytes: int = MAX_ZIP_BYTES,
) -> list[LayerArtifact]:
    inputs = inputs or LayerInputs.from_repo()
    inputs.check()
    version = inputs.package_version()
    progress.step("looking for CPython 3.10-3.14 interpreters")
    interpreters = find_interpreters(inputs.cache_dir / "interpreters.json")
    found = ", ".join(f"{i.full_version} ({i.executable})" for i in interpreters) or "none"
    progress.step(f"bytecode interpreters: {found}")
    warn_about_runtimes_without_bytecode(interpreters, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for arch in archs:
        with tempfile.TemporaryDirectory(prefix=f"lambda-wrapper-layer-{arch.name}-") as scratch:
            tree = assemble_tree(Path(scratch) / "layer", arch, inputs, interpreters, progress)
            zip_path = out_dir / zip_name(version, arch.name)
            progress.step(f"[{arch.name}] writing {zip_path}")
            staged = zip_path.with_name(f".{zip_path.name}.staged")
            write_zip(tree.root, staged)
            try:
                enforce_size_limit(staged, zip_path.name, max_zip_bytes)
            except LayerBuildError:
                # Never leave a previous, now misleading, zip + manifest looking like this build's result.
                for stale in (staged, zip_path, manifest_path_for(zip_path)):
                    stale.unlink(missing_ok=True)
                raise
            staged.replace(zip_path)
        manifest = build_manifest(
            zip_path,
            version=version,
            arch=arch.name,
            packages=tree.packages,
            bytecode_versions=tree.bytecode_versions,
            invalidation_mode=tree.invalidation_mode,
        )
        manifest_path = manifest_path_for(zip_path)
        write_manifest(manifest, manifest_path)
        sha256, size = manifest["zip"]["sha256"], manifest["zip"]["size"]
        progress.step(f"[{arch.name}] {zip_path.name}: {size:,} bytes, sha256 {sha256}")
        artifacts.append(LayerArtifact(arch.name, zip_path, manifest_path, sha256, size))
    return artifacts


def enforce_size_limit(zip_path: Path, display_name: str, max_zip_bytes: int = MAX_ZIP_BYTES) -> None:
    size = zip_path.stat().st_size
    if size > max_zip_bytes:
        raise LayerBuildError(
            f"{display_name} is {size:,} bytes, over the {max_zip_bytes:,}-byte size gate "
            f"(largest: {_largest_parts(zip_path)}); see 'Size gate' in layer-build/README.md"
        )


def _largest_parts(zip_path: Path, count: int = 3) -> str:
    """The top-level packages that take the most room in the zip, to say where to look."""
    sizes: Counter[str] = Counter()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            parts = info.filename.split("/")
            part = parts[1] if parts[0] == "python" and len(parts) > 2 else parts[-1] or parts[0]
            sizes[part] += info.compress_size
    return ", ".join(f"{name} {size // 1024:,} KiB" for name, size in sizes.most_common(count))
