"""``lambda-wrapper doctor``, outside a function and inside one (in the sandbox)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from function_runs import run_function
from lambda_wrapper import doctor
from lambda_wrapper_dev.cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-do-not-print"
# What the function's own handler runs: doctor in-process, and as `python -m` with the layer on the path.
DOCTOR_FUNCTION = {
    "app.py": """
        import contextlib
        import io
        import json
        import os
        import subprocess
        import sys

        from lambda_wrapper import doctor

        def handler(event, context):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                status = doctor.main(["--json"])
            child = subprocess.run(
                [sys.executable, "-m", "lambda_wrapper.doctor"], capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": "/opt/python"},
            )
            return {"status": status, "report": json.loads(out.getvalue()),
                    "childStatus": child.returncode, "childText": child.stdout + child.stderr}
    """
}


def run_doctor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> tuple[int, str]:
    for name in list(os.environ):
        if name.startswith(("LAMBDA_WRAPPER_", "AWS_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    with redirect_stdout(out):
        status = doctor.main(list(args))
    return status, out.getvalue()


def setting(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in report["settings"] if row["name"] == name)


def test_clean_environment_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    status, text = run_doctor(monkeypatch, {})
    assert status == 0
    assert "Problems (0)" in text and "LAMBDA_WRAPPER_EXPORTERS = emf  (default)" in text


def test_invalid_settings_are_listed_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    status, text = run_doctor(
        monkeypatch, {"LAMBDA_WRAPPER_PROCESS_METRICS": "perhaps", "LAMBDA_WRAPPER_LOGZ": "x"}
    )
    assert status == 1
    assert "LAMBDA_WRAPPER_PROCESS_METRICS='perhaps' is invalid (accepted: true|false)" in text
    assert "LAMBDA_WRAPPER_LOGZ" in text.split("Unknown LAMBDA_WRAPPER_* variables")[1]


def test_secrets_and_credentials_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "LAMBDA_WRAPPER_HTTP_HEADERS": f"x-api-key={SECRET}",
        "OTEL_EXPORTER_OTLP_HEADERS": f"bad header {SECRET}",
        "AWS_ACCESS_KEY_ID": f"AKIA{SECRET}",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": SECRET,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": SECRET,
    }
    for args in ((), ("--json",)):
        status, text = run_doctor(monkeypatch, env, *args)
        assert status == 1  # the OTLP headers are invalid
        assert SECRET not in text
    report = json.loads(text)
    assert setting(report, "LAMBDA_WRAPPER_HTTP_HEADERS")["value"] == "<redacted>"
    assert report["environment"]["AWS_SECRET_ACCESS_KEY"] == "<set, redacted>"


@pytest.mark.parametrize(
    ("execution_env", "mode", "sigterm"),
    [
        ("AWS_Lambda_python3.11", "blocking", False),
        ("AWS_Lambda_python3.12", "thread polling", True),
        ("AWS_Lambda_python3.15", "thread polling", True),
    ],
)
def test_runtime_client_mode(execution_env: str, mode: str, sigterm: bool) -> None:
    detected = doctor.runtime_client_mode({"AWS_EXECUTION_ENV": execution_env}, extension_enabled=True)
    assert (detected["mode"], detected["sigtermHandlersRun"]) == (mode, sigterm)
    without_extension = doctor.runtime_client_mode(
        {"AWS_EXECUTION_ENV": execution_env}, extension_enabled=False
    )
    assert without_extension["sigtermHandlersRun"] is False


@pytest.mark.parametrize(
    ("init_type", "managed", "snap"),
    [("lambda-managed-instances", True, False), ("snap-start", False, True), ("on-demand", False, False)],
)
def test_initialization_type(init_type: str, managed: bool, snap: bool) -> None:
    detected = doctor.initialization({"AWS_LAMBDA_INITIALIZATION_TYPE": init_type})
    assert (detected["managedInstances"], detected["snapStart"]) == (managed, snap)


def test_telemetry_port_taken_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr("lambda_wrapper.extension.listener_host", lambda: "127.0.0.1")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = doctor.telemetry_port_state(port)
    assert taken["available"] is False and "ephemeral" in str(taken["note"])
    assert doctor.telemetry_port_state(port)["available"] is True


def test_cli_and_module_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_WRAPPER_TIMEOUT_WARNING_MS", "-5")
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["doctor", "--json"]) == 1
    assert json.loads(out.getvalue())["ok"] is False
    child = subprocess.run(
        [sys.executable, "-m", "lambda_wrapper.doctor", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout)["ok"] is True
    assert doctor.main(["--bogus"]) == 2


# -- end to end -------------------------------------------------------------------------


def test_doctor_inside_a_function(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(
        layer_dir,
        tmp_path,
        DOCTOR_FUNCTION,
        timeout_s=20,
        env={"LAMBDA_WRAPPER_MEMORY_WARNING_PCT": "200", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"},
    )
    result = run.results[0]
    assert result.status == "success", run.text()
    body = result.json()
    report = body["report"]
    assert body["status"] == 1 and report["ok"] is False
    assert report["problems"] == [
        "LAMBDA_WRAPPER_MEMORY_WARNING_PCT='200' is invalid (accepted: 0 (off) or 1-100); "
        "the memory warning is disabled"
    ]
    detected = report["detected"]
    assert detected["taskRoot"]["path"] == "/var/task" or detected["taskRoot"]["path"].endswith("task")
    if detected["taskRoot"]["path"] == "/var/task":  # namespace mode: read-only like Lambda
        assert detected["taskRoot"]["readOnly"] is True
    assert detected["runtimeClient"]["mode"] == "thread polling"
    assert detected["runtimeClient"]["sigtermHandlersRun"] is True
    assert detected["wrapper"]["ranInThisEnvironment"] is True
    assert detected["wrapper"]["userHandler"] == "app.handler"
    assert detected["telemetryPort"]["note"] == "in use, by this process's own lambda-wrapper extension"
    assert detected["optionalPackages"]["structlog"] and detected["optionalPackages"]["psutil"]
    applied = {row["tweak"]: row["origin"] for row in report["tweaks"]}
    assert applied["faulthandler"] == "set by the wrapper"
    # The sandbox gives the function (fake) credentials: never shown.
    assert report["environment"]["AWS_SECRET_ACCESS_KEY"] == "<set, redacted>"
    assert "fake-secret-access-key" not in result.text()
    assert body["childStatus"] == 1
    assert "Problems (1)" in body["childText"] and "fake-secret-access-key" not in body["childText"]
