"""``lambda-wrapper run``: JSON and text output, layers from a directory or a zip."""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from function_runs import write_sources
from lambda_wrapper_dev.sandbox import run_command
from lambda_wrapper_dev.sandbox.runtime_image import LAMBDA_PYTHON_VERSIONS
from runtime_pythons import available_runtime_pythons

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run_command.main(args)
    return code, capsys.readouterr().out


def copy_layer(target: Path) -> Path:
    """A minimal layer from the working tree: the wrapper and the package (no sandbox)."""
    shutil.copy2(REPO / "wrapper" / "lambda-wrapper", target / "lambda-wrapper")
    (target / "lambda-wrapper").chmod(0o755)
    shutil.copytree(
        REPO / "src" / "lambda_wrapper",
        target / "python" / "lambda_wrapper",
        ignore=shutil.ignore_patterns("sandbox", "__pycache__"),
    )
    site = REPO / ".venv" / "lib" / "python3.11" / "site-packages"
    for package in ("structlog", "psutil"):
        if (site / package).is_dir():
            shutil.copytree(site / package, target / "python" / package)
    return target


def test_json_output_for_three_invokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(
        [
            "--task-root",
            str(HELLO),
            "--handler",
            "app.handler",
            "--invokes",
            "3",
            "--no-wrapper",
            "--output",
            "json",
            "--tmp",
            str(tmp_path / "fn-tmp"),
            "--event",
            '{"echo": 7}',
        ],
        capsys,
    )
    document = json.loads(out)
    assert code == 0
    invocations = document["invocations"]
    assert [item["coldStart"] for item in invocations] == [True, False, False]
    assert all(item["status"] == "success" for item in invocations)
    assert invocations[0]["response"] == {"message": "hello", "echo": 7}
    assert invocations[0]["initDurationMs"] > 0 and invocations[1]["initDurationMs"] is None
    assert set(invocations[0]) == {
        "requestId",
        "status",
        "durationMs",
        "billedDurationMs",
        "maxMemoryUsedMB",
        "initDurationMs",
        "coldStart",
        "response",
    }
    assert document["extension"] == {"registered": False, "subscribed": False, "records": 0}
    assert document["telemetryFile"] == str(tmp_path / "fn-tmp" / "lambda-wrapper" / "telemetry.ndjson")
    assert document["resources"].startswith(("cgroups: memory limited to 128 MB", "none: "))


def test_text_output_with_a_zipped_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "layer-src").mkdir()
    layer = copy_layer(tmp_path / "layer-src")
    archive = tmp_path / "layer.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(layer.rglob("*")):
            info = zipfile.ZipInfo(str(path.relative_to(layer)) + ("/" if path.is_dir() else ""))
            info.external_attr = (
                stat.S_IMODE(path.stat().st_mode) | (stat.S_IFDIR if path.is_dir() else stat.S_IFREG)
            ) << 16
            bundle.writestr(info, b"" if path.is_dir() else path.read_bytes())
    code, out = run_cli(
        [
            "--task-root",
            str(HELLO),
            "--handler",
            "app.handler",
            "--layer",
            str(archive),
            "--event",
            '{"echo": 1}',
            "--tmp",
            str(tmp_path / "fn-tmp"),
        ],
        capsys,
    )
    assert "sandbox: " in out and f"function /tmp: {tmp_path / 'fn-tmp'}" in out
    assert "resources: " in out
    assert "REQUEST ID" in out and "COLD" in out
    assert "response (" in out and "--- invoke 1/1" in out
    assert code == 0, out
    assert 'response (200): {"message": "hello", "echo": 1}' in out


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        run_command.main(["--task-root", str(HELLO), "--handler", "app.handler", "--event", "{not json"])
    assert raised.value.code == 2
    with pytest.raises(SystemExit):
        run_command.main(["--task-root", str(HELLO), "--handler", "app.handler", "--env", "NOEQUALS"])


REPORTS_ITS_RUNTIME = """
import os
import sys

import boto3


def handler(event, context):
    return {
        "version": sys.version,
        "executionEnv": os.environ.get("AWS_EXECUTION_ENV"),
        "boto3": boto3.__file__,
    }
"""


def test_runtime_picks_the_interpreter(
    runtime_python: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_root = write_sources(tmp_path / "task", {"app.py": REPORTS_ITS_RUNTIME})
    code, out = run_cli(
        [
            "--task-root",
            str(task_root),
            "--handler",
            "app.handler",
            "--runtime",
            f"python{runtime_python}",
            "--no-wrapper",
            "--output",
            "json",
        ],
        capsys,
    )
    document = json.loads(out)
    assert code == 0, out
    assert document["runtime"] == f"python{runtime_python}"
    response = document["invocations"][0]["response"]
    assert response["version"].startswith(f"{runtime_python}."), response
    assert response["executionEnv"] == f"AWS_Lambda_python{runtime_python}"
    # Like the managed runtimes, the image carries boto3: unbundled, it still imports.
    assert response["boto3"] == "/var/runtime/boto3/__init__.py"


NOT_HERE = [
    f"python{version}" for version in LAMBDA_PYTHON_VERSIONS if version not in available_runtime_pythons()
]


@pytest.mark.parametrize("runtime", [*NOT_HERE, "python3.9", "python", "3.12", "garbage"])
def test_a_runtime_not_available_here_is_a_usage_error(
    runtime: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        run_command.main(["--task-root", str(HELLO), "--handler", "app.handler", "--runtime", runtime])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert f"--runtime {runtime!r}" in error
    available = ", ".join(f"python{version}" for version in available_runtime_pythons())
    assert f"available here: {available}" in error


def test_a_fresh_tmp_is_removed_unless_kept(
    tmp_path: Path, layer_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    args = ["--task-root", str(HELLO), "--handler", "app.handler", "--layer", str(layer_dir)]

    code, out = run_cli(args, capsys)
    assert code == 0, out
    assert list(scratch.iterdir()) == [], "the run left files behind"
    assert "removed (--keep or --tmp DIR keeps it)" in out

    code, out = run_cli([*args, "--keep"], capsys)
    assert code == 0, out
    kept = list(scratch.iterdir())
    assert [item.name.startswith("lambda-wrapper-run-") for item in kept] == [True]
    telemetry = kept[0] / "lambda-wrapper" / "telemetry.ndjson"
    assert telemetry.stat().st_size > 0
    assert f"function /tmp kept in {kept[0]}" in out
    assert f"captured telemetry: {telemetry}" in out


def test_records_are_counted_where_the_file_path_puts_them(
    tmp_path: Path, layer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(
        [
            "--task-root",
            str(HELLO),
            "--handler",
            "app.handler",
            "--layer",
            str(layer_dir),
            "--output",
            "json",
            "--tmp",
            str(tmp_path / "fn-tmp"),
            "--env",
            "LAMBDA_WRAPPER_FILE_PATH=/tmp/elsewhere/capture.ndjson",
        ],
        capsys,
    )
    document = json.loads(out)
    assert code == 0, out
    moved = tmp_path / "fn-tmp" / "elsewhere" / "capture.ndjson"
    assert document["telemetryFile"] == str(moved)
    records = [line for line in moved.read_text().splitlines() if line.strip()]
    assert document["extension"]["records"] == len(records) > 0
    assert document["captured"]["platform.report"] == 1
    assert document["telemetryFileProblem"] is None


def test_a_file_path_outside_tmp_is_explained(
    tmp_path: Path, layer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(
        [
            "--task-root",
            str(HELLO),
            "--handler",
            "app.handler",
            "--layer",
            str(layer_dir),
            "--output",
            "json",
            "--tmp",
            str(tmp_path / "fn-tmp"),
            "--env",
            "LAMBDA_WRAPPER_FILE_PATH=/var/task/capture.ndjson",
        ],
        capsys,
    )
    document = json.loads(out)
    assert code == 0, out  # a bad setting switches off its feature, never the function
    assert document["extension"]["records"] == 0 and document["telemetryFile"] is None
    problem = document["telemetryFileProblem"]
    assert "LAMBDA_WRAPPER_FILE_PATH='/var/task/capture.ndjson' is invalid" in problem
    assert "the file exporter is disabled" in problem
