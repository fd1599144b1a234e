"""``lambda-wrapper doctor``: effective settings, their problems, and what was detected.

Runs anywhere: on a laptop (``lambda-wrapper doctor``), inside a function's
environment (``python -m lambda_wrapper.doctor`` with the layer on ``sys.path``, or
``doctor.main([])`` from a handler). Secrets and AWS credentials are never printed,
only whether they are set. Exit status 1 when a setting is invalid, else 0.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

from . import aws
from .instruments import tweaks
from .settings import Handover, Settings
from .variables import SETTINGS, _show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

USAGE = """usage: lambda-wrapper doctor [--json]

Print the effective lambda-wrapper settings (secrets masked), every invalid value,
and what was detected about this environment. Exit status 1 if a setting is invalid.
"""

# Thread polling (so Python SIGTERM handlers can run) per awslambdaric's
# lambda_config.py; used when awslambdaric itself is not importable here.
THREAD_POLLING_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in range(12, 16))
# Variables the wrapper sets for the supervisor: not user settings, never typos.
WRAPPER_INTERNAL = frozenset(Handover.ALL)
ENVIRONMENT_SHOWN = (
    aws.EXECUTION_ENV,
    aws.FUNCTION_NAME,
    aws.FUNCTION_VERSION,
    aws.FUNCTION_MEMORY_SIZE,
    aws.INITIALIZATION_TYPE,
    aws.LOG_FORMAT,
    aws.LOG_LEVEL,
    aws.RUNTIME_API,
    aws.EXEC_WRAPPER,
    aws.REGION,
    aws.TASK_ROOT,
    aws.HANDLER,
    Handover.USER_HANDLER,
    Handover.ROOT,
    "PYTHONPATH",
    aws.ACCESS_KEY_ID,
    aws.SECRET_ACCESS_KEY,
    aws.SESSION_TOKEN,
    aws.CONTAINER_CREDENTIALS_FULL_URI,
    aws.CONTAINER_AUTHORIZATION_TOKEN,
)
SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "CREDENTIAL", "ACCESS_KEY", "AUTHORIZATION")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in args):
        print(USAGE, end="")
        return 0
    unknown = [arg for arg in args if arg != "--json"]
    if unknown:
        print(f"lambda-wrapper doctor: unknown option {unknown[0]!r}\n\n{USAGE}", file=sys.stderr, end="")
        return 2
    report = build_report(os.environ)
    if "--json" in args:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_text(report), end="")
    return 0 if report["ok"] else 1


def build_report(environ: Mapping[str, str]) -> dict[str, object]:
    settings = Settings(environ)
    return {
        "ok": not settings.problems,
        "settings": effective_settings(settings, environ),
        "problems": [problem.describe() for problem in settings.problems],
        "unknownVariables": unknown_variables(environ),
        "detected": detect(settings, environ),
        "tweaks": tweaks.status(settings, environ),
        "environment": masked_environment(environ),
    }


def effective_settings(settings: Settings, environ: Mapping[str, str]) -> list[dict[str, object]]:
    invalid = {problem.name for problem in settings.problems}
    rows: list[dict[str, object]] = []
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        source = "default"
        if raw is not None and raw != "":
            source = "invalid, see problems" if setting.name in invalid else "environment"
        value = getattr(settings, setting.attribute)
        shown = "<redacted>" if setting.secret and source != "default" else _show(value)
        rows.append({"name": setting.name, "value": shown, "source": source})
    return rows


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``LAMBDA_WRAPPER_*`` names nobody reads: most likely typos."""
    known = {setting.name for setting in SETTINGS} | WRAPPER_INTERNAL
    return sorted(name for name in environ if name.startswith("LAMBDA_WRAPPER_") and name not in known)


def detect(settings: Settings, environ: Mapping[str, str]) -> dict[str, object]:
    return {
        "python": {"version": sys.version.split()[0], "executable": sys.executable},
        "runtimeClient": runtime_client_mode(environ, settings.extension_enabled),
        "initialization": initialization(environ),
        "wrapper": wrapper_state(environ),
        "taskRoot": task_root_state(environ.get(aws.TASK_ROOT)),
        "telemetryPort": telemetry_port_state(settings.telemetry_port),
        "telemetrySource": telemetry_source_state(settings.telemetry_source),
        "optionalPackages": {name: package_version(name) for name in ("structlog", "psutil")},
    }


def runtime_client_mode(environ: Mapping[str, str], extension_enabled: bool) -> dict[str, object]:
    execution_env = environ.get(aws.EXECUTION_ENV)
    thread_polling = execution_env in _thread_polling_envs()
    if execution_env is None:
        note = "not a Lambda runtime (AWS_EXECUTION_ENV is not set)"
    elif thread_polling:
        note = "awslambdaric polls /next on a worker thread: SIGTERM handlers run on the main thread"
    else:
        note = (
            "awslambdaric blocks the main thread in C while waiting for /next: a Python SIGTERM "
            "handler cannot run there; the extension watches the signal wakeup fd instead"
        )
    if not extension_enabled:
        note += "; with LAMBDA_WRAPPER_EXTENSION=false no extension registers, so Lambda sends no SIGTERM"
    return {
        "awslambdaric": package_version("awslambdaric"),
        "executionEnv": execution_env,
        "mode": "thread polling" if thread_polling else "blocking",
        "sigtermHandlersRun": thread_polling and extension_enabled,
        "note": note,
    }


def _thread_polling_envs() -> frozenset[str]:
    try:
        from awslambdaric.lambda_config import LambdaConfigProvider

        return frozenset(LambdaConfigProvider.SUPPORTED_THREADPOLLING_ENVS)
    except Exception:
        return THREAD_POLLING_ENVS


def initialization(environ: Mapping[str, str]) -> dict[str, object]:
    init_type = environ.get(aws.INITIALIZATION_TYPE)
    return {
        "type": init_type,
        "managedInstances": init_type == aws.MANAGED_INSTANCES,
        "snapStart": init_type == aws.SNAP_START,
        "maxConcurrency": environ.get(aws.MAX_CONCURRENCY),
    }


def wrapper_state(environ: Mapping[str, str]) -> dict[str, object]:
    return {
        "execWrapper": environ.get(aws.EXEC_WRAPPER),
        "ranInThisEnvironment": environ.get(Handover.ROOT) is not None,
        "userHandler": environ.get(Handover.USER_HANDLER) or environ.get(aws.HANDLER),
    }


def task_root_state(path: str | None) -> dict[str, object]:
    if not path:
        return {"path": None, "readOnly": None, "note": "LAMBDA_TASK_ROOT is not set (not inside a function)"}
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return {"path": path, "readOnly": None, "note": f"cannot stat: {exc.strerror}"}
    note = "read-only, as on Lambda" if read_only else "writable (on Lambda it is read-only)"
    return {"path": path, "readOnly": read_only, "note": note}


def telemetry_port_state(port: int) -> dict[str, object]:
    from .extension import listener_host

    host = listener_host()
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((host, port))
        available, note = True, "free"
    except OSError as exc:
        available = False
        if any(thread.name == "lambda-wrapper-listener" for thread in threading.enumerate()):
            note = "in use, by this process's own lambda-wrapper extension"
        else:
            note = f"in use ({exc.strerror}); the extension would fall back to an ephemeral port"
    finally:
        probe.close()
    return {"host": host, "port": port, "available": available, "note": note}


def telemetry_source_state(setting: str) -> dict[str, object]:
    """Which source the per-invocation records come from: known inside a running function."""
    supervisor = sys.modules.get("lambda_wrapper.supervisor")
    in_use = getattr(supervisor, "TELEMETRY_SOURCE", None) if supervisor is not None else None
    if in_use is None:
        note = {
            "auto": "platform where the Telemetry API subscription succeeds, else self "
                    "(the supervisor's own measurements)",
            "platform": "the Telemetry API's records only",
            "self": "the supervisor's own measurements only",
        }.get(setting, setting)
        return {"setting": setting, "inUse": "not running in a function", "note": note}
    notes = {
        "platform": "the Telemetry API's records",
        "self": "the supervisor's own measurements (the Telemetry API gives none, or the setting says so)",
        "hold": "the Telemetry API's records; the supervisor's for an invocation whose report does not come",
    }
    return {"setting": setting, "inUse": in_use, "note": notes.get(in_use, in_use)}


def package_version(name: str) -> str | None:
    """The installed version, or None when the package cannot be found."""
    import importlib.metadata
    import importlib.util

    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(found, version unknown)"


def masked_environment(environ: Mapping[str, str]) -> dict[str, str | None]:
    return {name: mask(name, environ.get(name)) for name in ENVIRONMENT_SHOWN}


def mask(name: str, value: str | None) -> str | None:
    if value is None or not any(marker in name for marker in SECRET_MARKERS):
        return value
    return "<set, redacted>"


def render_text(report: dict[str, object]) -> str:
    lines = ["lambda-wrapper doctor", "", "Settings (effective)"]
    for row in _rows(report["settings"]):
        lines.append(f"  {row['name']} = {row['value']}  ({row['source']})")
    problems = report["problems"]
    assert isinstance(problems, list)
    lines += ["", f"Problems ({len(problems)})"]
    lines += [f"  {problem}" for problem in problems] or ["  none"]
    unknown = report["unknownVariables"]
    assert isinstance(unknown, list)
    if unknown:
        lines += ["", "Unknown LAMBDA_WRAPPER_* variables (typos?)"] + [f"  {name}" for name in unknown]
    lines += ["", "Detected"]
    detected = report["detected"]
    assert isinstance(detected, dict)
    for section, values in detected.items():
        lines.append(f"  {section}:")
        assert isinstance(values, dict)
        lines += [f"    {key}: {value}" for key, value in values.items()]
    lines += ["", "Environment tweaks"]
    for row in _rows(report["tweaks"]):
        state = "on" if row["enabled"] else "off"
        lines.append(
            f"  {row['tweak']} ({row['switch']}: {state}): {row['variable']}={row['value']} - {row['origin']}"
        )
    lines += ["", "Environment"]
    environment = report["environment"]
    assert isinstance(environment, dict)
    lines += [f"  {name}={value}" for name, value in environment.items() if value is not None]
    return "\n".join(lines) + "\n"


def _rows(value: object) -> list[dict[str, object]]:
    assert isinstance(value, list)
    return value


if __name__ == "__main__":
    raise SystemExit(main())
