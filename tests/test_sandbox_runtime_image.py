"""The runtime image carries the AWS SDK for Python where Lambda's managed runtimes do.

On Lambda, boto3 and botocore live in /var/runtime, which comes on ``sys.path`` after the
function's own code (/var/task) and its layers (/opt/python...): a function that imports
boto3 without bundling it works, and one that bundles its own version gets its own.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from function_runs import write_sources
from lambda_wrapper_dev.sandbox.runtime_image import (
    RUNTIME_SDK,
    cache_root,
    ensure_runtime_image,
    host_python_version,
)
from platforms import FunctionUnderTest, Platform
from runtime_pythons import available_runtime_pythons

pytestmark = pytest.mark.timeout(180)

# A real boto3 release other than any runtime's pin, for the function to bundle.
BUNDLED_BOTO3 = "1.35.0"

IMPORTS_BOTO3 = """
import sys

import boto3


def handler(event, context):
    client = boto3.client("s3", region_name="us-east-1")
    return {
        "file": boto3.__file__,
        "version": boto3.__version__,
        "service": client.meta.service_model.service_name,
        "path": sys.path,
    }


def versions(event, context):
    return {"file": boto3.__file__, "version": boto3.__version__}
"""


def pinned_version(python_version: str, package: str) -> str:
    for requirement in RUNTIME_SDK[python_version]:
        name, _, version = requirement.partition("==")
        if name == package:
            return version
    raise KeyError(package)


def test_the_image_holds_the_pinned_sdk_in_the_runtime_dir(runtime_python: str) -> None:
    image = ensure_runtime_image(runtime_python)
    installed = {
        str(dist.metadata["Name"]).lower(): dist.version
        for dist in importlib.metadata.distributions(path=[str(image.runtime_dir)])
    }
    for requirement in RUNTIME_SDK[runtime_python]:
        name, _, version = requirement.partition("==")
        assert installed.get(name) == version, f"{requirement} not in {image.runtime_dir}"
    # /var/lang's site-packages stays as bare as the managed runtime's.
    assert not list(image.lang_dir.glob("lib/python*/site-packages/boto3"))


@pytest.mark.parametrize("platform_name", ["sandbox", "rie"])
def test_a_function_imports_boto3_without_bundling_it(
    platform_name: str, open_platform: Callable[[str], Platform], tmp_path: Path
) -> None:
    task_root = write_sources(tmp_path / "task", {"app.py": IMPORTS_BOTO3})
    platform = open_platform(platform_name)
    platform.start(FunctionUnderTest(task_root=task_root))
    invocation = platform.invoke(b"{}")
    assert invocation.status_code == 200, platform.output()
    body = invocation.json
    assert body["file"] == "/var/runtime/boto3/__init__.py"
    assert body["version"] == pinned_version(host_python_version(), "boto3")
    assert body["service"] == "s3"
    path = body["path"]
    assert path.index("/var/task") < path.index("/opt/python") < path.index("/var/runtime"), path


@pytest.fixture(scope="module")
def bundled_boto3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A boto3 release installed the way a function bundles it: into its code directory."""
    target = tmp_path_factory.mktemp("bundled")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(target), f"boto3=={BUNDLED_BOTO3}"],
        check=True,
        capture_output=True,
    )
    return target


@pytest.mark.parametrize("platform_name", ["sandbox", "rie"])
def test_a_bundled_boto3_comes_before_the_runtime_one(
    platform_name: str, open_platform: Callable[[str], Platform], tmp_path: Path, bundled_boto3: Path
) -> None:
    task_root = write_sources(tmp_path / "task", {"app.py": IMPORTS_BOTO3})
    shutil.copytree(bundled_boto3 / "boto3", task_root / "boto3")
    platform = open_platform(platform_name)
    platform.start(FunctionUnderTest(task_root=task_root, handler="app.versions"))
    invocation = platform.invoke(b"{}")
    assert invocation.status_code == 200, platform.output()
    assert invocation.json == {"file": "/var/task/boto3/__init__.py", "version": BUNDLED_BOTO3}


NO_INTERPRETER = ["3.9", *sorted(set(RUNTIME_SDK) - set(available_runtime_pythons()))]


@pytest.mark.parametrize("python_version", NO_INTERPRETER)
def test_no_image_for_a_runtime_without_an_interpreter(python_version: str) -> None:
    with pytest.raises(RuntimeError, match=f"python{python_version}"):
        ensure_runtime_image(python_version)
    assert not list(cache_root().glob(f"runtime-images/py{python_version}-*"))
