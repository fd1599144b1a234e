"""``lambda-wrapper run``: JSON and text output, layers from a directory or a zip."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from lambda_wrapper.sandbox import run_command

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
    assert code in (0, 1)  # the wrapper's own state is not this test's subject
    if code == 0:
        assert '"echo": 1' in out


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        run_command.main(["--task-root", str(HELLO), "--handler", "app.handler", "--event", "{not json"])
    assert raised.value.code == 2
    with pytest.raises(SystemExit):
        run_command.main(["--task-root", str(HELLO), "--handler", "app.handler", "--env", "NOEQUALS"])
