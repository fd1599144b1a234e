"""The official Runtime Interface Emulator, taken from the pinned ``aws-sam-cli`` wheel.

The sandbox is held to the RIE: the conformance tests run the same scenarios on both.
The wheel carries static RIE binaries for both architectures (contract 9.2), so no
Docker is needed; we download the wheel once and unpack just the binary we need.
"""

from __future__ import annotations

import contextlib
import platform
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .runtime_image import cache_root

AWS_SAM_CLI_VERSION = "1.170.0"


def function_environment(
    handler: str, function_name: str, memory_mb: int, timeout_s: float,
    interpreter_bin: str = "/var/lang/bin",
) -> dict[str, str]:
    """What the managed runtime sets for a function run on the RIE (contract 5.1).

    The RIE hands its own environment to the runtime, so whoever starts it passes the
    function's environment: this, plus the function's variables.
    """
    return {
        "PATH": f"{interpreter_bin}:/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        # The RIE reads whole seconds for the deadline and the timeout.
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(max(1, round(timeout_s))),
    }


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (the RIE's invoke and Runtime API ports):
    each probe stays bound until all are chosen, so that two of them cannot be the same
    port. A port may still be taken before its user binds it."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


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
