"""The environment variables Lambda gives the runtime and the extensions (contract 5.1, 2.4).

Nothing leaks in from the host: in particular no ``PYTHONPATH``, which would make
bootstrap.py skip the layers' ``/opt/python`` paths. Credentials are obviously fake
test values. ``spec.env`` goes on top, as function configuration does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from .namespace import Paths

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIALAMBDASANDBOXFAKE",
    "AWS_SECRET_ACCESS_KEY": "lambda-sandbox/fake-secret-access-key/not-valid-anywhere",
    "AWS_SESSION_TOKEN": "lambda-sandbox-fake-session-token",
}
# Runtime-only variables that external extensions do not get (contract 2.4).
EXTENSION_EXCLUDED = {
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT",
    "_HANDLER",
}


def log_stream_name() -> str:
    """Lambda's format, ``YYYY/MM/DD/[$LATEST]<32 hex>``; it is also the ``instanceId``."""
    return time.strftime("%Y/%m/%d/", time.gmtime()) + "[$LATEST]" + secrets.token_hex(16)


def runtime_environment(
    *,
    function_name: str,
    memory_mb: int,
    handler: str,
    runtime_api: str,
    paths: Paths,
    interpreter_bin: str,
    log_stream: str,
    wrapper: str | None,
    extra: Mapping[str, str],
    host_mode: bool,
) -> dict[str, str]:
    opt = paths.opt_dir
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "LAMBDA_TASK_ROOT": paths.task_root,
        "LAMBDA_RUNTIME_DIR": paths.runtime_dir,
        "_HANDLER": handler,
        # Lambda's zone is UTC (its TZ=:/etc/localtime points at UTC); the host's may not be.
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        # /var/lang/bin is where the image's interpreter lives.
        "PATH": f"{interpreter_bin}:/usr/local/bin:/usr/bin/:/bin:{opt}/bin",
        "LD_LIBRARY_PATH": (
            f"/lib64:/usr/lib64:{paths.runtime_dir}:{paths.runtime_dir}/lib:"
            f"{paths.task_root}:{paths.task_root}/lib:{opt}/lib"
        ),
        **FAKE_CREDENTIALS,
    }
    if wrapper:
        env["AWS_LAMBDA_EXEC_WRAPPER"] = wrapper
    if host_mode:
        # No mount namespace: bootstrap.py finds the layer here instead of /opt, and
        # temporary files go to the function's own tmp dir rather than the host's /tmp.
        env["_LAMBDA_SANDBOX_OPT_DIR"] = opt
        env["TMPDIR"] = paths.tmp_dir
    env.update(extra)
    return env


def extension_environment(runtime_env: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in runtime_env.items()
        if key not in EXTENSION_EXCLUDED and not key.startswith("_")
    }
