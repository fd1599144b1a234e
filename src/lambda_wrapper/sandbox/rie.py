"""The official Runtime Interface Emulator, taken from the pinned ``aws-sam-cli`` wheel.

The sandbox is held to the RIE: the conformance tests run the same scenarios on both.
The wheel carries static RIE binaries for both architectures (contract 9.2), so no
Docker is needed; we download the wheel once and unpack just the binary we need.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .runtime_image import cache_root

AWS_SAM_CLI_VERSION = "1.170.0"


def host_arch() -> str:
    return "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def ensure_rie() -> Path:
    """Path of the RIE binary for this machine, downloading the pinned wheel once."""
    target = cache_root() / "rie" / AWS_SAM_CLI_VERSION / f"aws-lambda-rie-{host_arch()}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download_dir:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-d", download_dir, f"aws-sam-cli=={AWS_SAM_CLI_VERSION}"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"downloading aws-sam-cli=={AWS_SAM_CLI_VERSION} failed:\n{result.stderr[-2000:]}")
        wheel = next(Path(download_dir).glob("aws_sam_cli-*.whl"))
        member = f"samcli/local/rapid/aws-lambda-rie-{host_arch()}"
        with zipfile.ZipFile(wheel) as archive:
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
    partial.chmod(0o755)
    partial.rename(target)
    return target
