"""`lambda-wrapper layer publish` against moto_server (a local fake of the Lambda API)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "layer-build"))

from layerbuild.api import LayerUsageError, build_zips  # noqa: E402
from layerbuild.architectures import resolve_architectures  # noqa: E402
from layerbuild.cli import main  # noqa: E402
from layerbuild.inputs import LayerInputs  # noqa: E402
from layerbuild.manifest import manifest_path_for  # noqa: E402
from layerbuild.progress import SILENT  # noqa: E402
from layerbuild.publish import MAX_DIRECT_UPLOAD_BYTES, redact, validate_layer_name  # noqa: E402

boto3 = pytest.importorskip("boto3", reason="publishing needs the `publish` extra")

FAKE_KEY_ID = "AKIAFAKEFAKEFAKE1234"
FAKE_SECRET = "fake-secret-never-printed-0123456789"
REGION = "us-east-1"
ARN = re.compile(rf"arn:aws:lambda:{REGION}:\d{{12}}:layer:[\w-]+:\d+")


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server is not installed (dev extra moto[server])")
    port = _free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start (exit {process.poll()})")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only; nothing from the host's AWS configuration, no instance metadata."""
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                     "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_LAMBDA"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture(scope="module")
def layer_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs = LayerInputs.from_repo()
    if not inputs.wrapper_script.is_file():
        pytest.skip("the real wrapper script is needed to build a layer")
    out = tmp_path_factory.mktemp("dist")
    # The size gate has its own test; publishing is tested whatever the zip's size.
    (artifact,) = build_zips(
        resolve_architectures("x86_64"), out, inputs=inputs, progress=SILENT, max_zip_bytes=sys.maxsize
    )
    return artifact.zip_path


def _publish(*arguments: str) -> int:
    return main(["publish", *arguments])


def test_publish_prints_the_arn_and_sets_runtimes_and_architecture(
    aws_env: None, moto_url: str, layer_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _publish("--zip", str(layer_zip), "--name", "lambda-wrapper", "--endpoint-url", moto_url,
                    "--region", REGION)  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    arn = captured.out.strip()
    assert ARN.fullmatch(arn), arn
    assert FAKE_SECRET not in captured.out + captured.err

    manifest = json.loads(manifest_path_for(layer_zip).read_text())
    client = boto3.client("lambda", endpoint_url=moto_url, region_name=REGION)
    version = client.get_layer_version(LayerName="lambda-wrapper", VersionNumber=int(arn.rsplit(":", 1)[1]))
    assert version["LayerVersionArn"] == arn
    assert version["CompatibleRuntimes"] == manifest["compatible_runtimes"]
    assert version["CompatibleRuntimes"] == [
        "python3.10",
        "python3.11",
        "python3.12",
        "python3.13",
        "python3.14",
    ]
    assert version["CompatibleArchitectures"] == ["x86_64"]
    assert version["LicenseInfo"] == "Apache-2.0"
    assert version["Description"] == manifest["description"]


def test_publish_twice_makes_a_new_version(
    aws_env: None, moto_url: str, layer_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ("--zip", str(layer_zip), "--name", "twice", "--endpoint-url", moto_url, "--arch", "x86_64")
    assert _publish(*arguments, "--description", "first") == 0
    assert _publish(*arguments, "--description", "second") == 0
    first, second = capsys.readouterr().out.split()
    assert (first.rsplit(":", 1)[1], second.rsplit(":", 1)[1]) == ("1", "2")
    client = boto3.client("lambda", endpoint_url=moto_url, region_name=REGION)
    assert client.get_layer_version(LayerName="twice", VersionNumber=2)["Description"] == "second"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert FAKE_SECRET not in captured.err and FAKE_KEY_ID not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    "name", ["has space", "x" * 141, "", "arn:aws:lambda:us-east-1:12345:layer:short-account"]
)
def test_invalid_layer_name_exits_2(
    aws_env: None, layer_zip: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish("--zip", str(layer_zip), "--name", name) == 2
    assert "layer name" in _one_line_error(capsys)


def test_layer_name_rules() -> None:
    validate_layer_name("lambda-wrapper_2")
    validate_layer_name("arn:aws:lambda:eu-west-1:123456789012:layer:lambda-wrapper")
    validate_layer_name("x" * 140)
    with pytest.raises(LayerUsageError):
        validate_layer_name("lambda.wrapper")


def test_missing_zip_exits_1(aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _publish("--zip", str(tmp_path / "absent.zip"), "--name", "layer") == 1
    assert "does not exist" in _one_line_error(capsys)


def test_oversized_zip_exits_1(aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = tmp_path / "huge.zip"
    with huge.open("wb") as stream:
        stream.truncate(MAX_DIRECT_UPLOAD_BYTES + 1)  # sparse: costs no disk
    assert _publish("--zip", str(huge), "--name", "layer") == 1
    assert "direct upload limit" in _one_line_error(capsys)


def test_zip_not_matching_its_manifest_exits_1(
    aws_env: None, layer_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / layer_zip.name
    tampered.write_bytes(layer_zip.read_bytes() + b"\0")
    shutil.copy(manifest_path_for(layer_zip), manifest_path_for(tampered))
    assert _publish("--zip", str(tampered), "--name", "layer") == 1
    assert "does not match its manifest" in _one_line_error(capsys)

    manifest_path_for(tampered).unlink()
    assert _publish("--zip", str(tampered), "--name", "layer") == 1
    assert "no manifest" in _one_line_error(capsys)


def test_architecture_mismatch_exits_2(
    aws_env: None, layer_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish("--zip", str(layer_zip), "--name", "layer", "--arch", "arm64") == 2
    assert "built for x86_64" in _one_line_error(capsys)


def test_missing_credentials_exit_1(
    aws_env: None,
    moto_url: str,
    layer_zip: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert _publish("--zip", str(layer_zip), "--name", "layer", "--endpoint-url", moto_url) == 1
    assert "no AWS credentials" in _one_line_error(capsys)


def test_unreachable_endpoint_does_not_leak_credentials(
    aws_env: None, layer_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"http://127.0.0.1:{_free_loopback_port()}"
    assert _publish("--zip", str(layer_zip), "--name", "layer", "--endpoint-url", closed) == 1
    assert "publishing failed" in _one_line_error(capsys)


def test_missing_boto3_is_a_clear_error(
    aws_env: None, layer_zip: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    assert _publish("--zip", str(layer_zip), "--name", "layer") == 1
    assert "pip install 'lambda-wrapper[publish]'" in _one_line_error(capsys)


def test_redact_removes_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    text = redact(f"key AKIAIOSFODNN7EXAMPLE secret {FAKE_SECRET}")
    assert "AKIA" not in text and FAKE_SECRET not in text


# --- the SAM example that deploys the same zip ------------------------------------------------------

TEMPLATE = REPO_ROOT / "examples" / "deploy" / "template.yaml"


def test_deploy_template_points_at_the_built_zip() -> None:
    version = LayerInputs.from_repo().package_version()
    text = TEMPLATE.read_text()
    assert f"ContentUri: ../../dist/lambda-wrapper-{version}-x86_64.zip" in text
    assert "AWS_LAMBDA_EXEC_WRAPPER: /opt/lambda-wrapper" in text
    assert (TEMPLATE.parent / "../hello/app.py").resolve().is_file()


def test_deploy_template_passes_cfn_lint() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed (dev extra)")
    result = subprocess.run(
        [cfn_lint, str(TEMPLATE)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
