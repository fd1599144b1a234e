"""The JSON file next to each zip: what is inside, its checksum, and how to publish it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import LayerBuildError
from .runtimes import COMPATIBLE_RUNTIMES, runtimes_without_bytecode

LICENSE = "Apache-2.0"
DESCRIPTION = (
    "lambda-wrapper {version} ({arch}): observability for Python functions via AWS_LAMBDA_EXEC_WRAPPER"
)
MANIFEST_SUFFIX = ".manifest.json"


def manifest_path_for(zip_path: Path) -> Path:
    return zip_path.with_name(zip_path.name.removesuffix(".zip") + MANIFEST_SUFFIX)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(
    zip_path: Path,
    *,
    version: str,
    arch: str,
    packages: dict[str, str],
    bytecode_versions: dict[str, str],
    invalidation_mode: str,
) -> dict[str, Any]:
    missing = runtimes_without_bytecode(bytecode_versions)
    return {
        "name": "lambda-wrapper",
        "version": version,
        "architecture": arch,
        "compatible_runtimes": list(COMPATIBLE_RUNTIMES),
        "license": LICENSE,
        "description": DESCRIPTION.format(version=version, arch=arch),
        "zip": {"file": zip_path.name, "sha256": sha256_of(zip_path), "size": zip_path.stat().st_size},
        "packages": dict(sorted(packages.items())),
        "bytecode": {
            "invalidation_mode": invalidation_mode,
            # runtime version -> exact interpreter that compiled it
            "python_versions": dict(sorted(bytecode_versions.items())),
            # these runtimes still work, but compile the sources in memory at every cold start
            "runtimes_without_bytecode": missing,
            # every compatible runtime: the interpreter its bytecode was compiled with, or None
            "by_runtime": {
                runtime: {
                    "bytecode": runtime not in missing,
                    "compiled_with": bytecode_versions.get(runtime.removeprefix("python")),
                }
                for runtime in COMPATIBLE_RUNTIMES
            },
        },
    }


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_manifest(zip_path: Path) -> dict[str, Any]:
    """The manifest written next to `zip_path`, checked against the zip it describes."""
    path = manifest_path_for(zip_path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayerBuildError(
            f"no manifest {path.name} next to {zip_path}; build the zip with `layer build`"
        ) from None
    except (OSError, ValueError) as error:
        raise LayerBuildError(f"cannot read manifest {path}: {error}") from None
    required = {
        "zip": dict,
        "architecture": str,
        "compatible_runtimes": list,
        "license": str,
        "description": str,
    }
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), t) for k, t in required.items()):
        raise LayerBuildError(f"manifest {path} is not a lambda-wrapper layer manifest")
    expected = manifest["zip"].get("sha256")
    actual = sha256_of(zip_path)
    if expected != actual:
        raise LayerBuildError(
            f"{zip_path.name} does not match its manifest (sha256 {actual[:12]}..., manifest says "
            f"{str(expected)[:12]}...); rebuild it"
        )
    return manifest
