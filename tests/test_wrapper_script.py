"""The POSIX sh wrapper (``wrapper/lambda-wrapper``) on its own.

Most tests run the wrapper in front of a fake "runtime" that prints its PID and its
environment, under every POSIX shell we can find (``/bin/sh`` is dash on Debian and
on Amazon Linux it is bash; busybox covers minimal images). The last group runs the
real chain on the RIE (bootstrap -> wrapper -> bootstrap.py -> awslambdaric) with a
stub layer whose entry module reports the interpreter's state, to check the
PYTHONPATH rules against the real ``sys.path`` set-up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_wrapper_dev.sandbox.mounts import Bind, namespace_argv
from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image
from platforms import TESTS_DIR, FunctionUnderTest, Platform, skip_unless_rie_can_run

WRAPPER = TESTS_DIR.parent / "wrapper" / "lambda-wrapper"
PATHHOOK = TESTS_DIR.parent / "src" / "lambda_wrapper" / "supervisor" / "pathhook" / "sitecustomize.py"
ENTRY_HANDLER = "lambda_wrapper.supervisor.entry.handler"
HOOK_SUFFIX = "python/lambda_wrapper/supervisor/pathhook"
# Prints its PID, then its environment NUL-separated (values may hold newlines).
FAKE_RUNTIME = ["/bin/sh", "-c", 'printf "pid %s\\n" "$$"; exec env -0']
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "_HANDLER": "app.handler"}

SHELL_CANDIDATES = {"dash": ["dash"], "bash": ["bash", "--posix"], "busybox": ["busybox", "sh"]}
SHELLS = {name: argv for name, argv in SHELL_CANDIDATES.items() if shutil.which(argv[0])}

# A stand-in for the real entry module: it reports what the runtime looks like after
# start-up, which is exactly what the wrapper and its path hook are responsible for.
REPORTING_ENTRY = """
import importlib.util, os, sys

def handler(event, context):
    def importable(name):
        return importlib.util.find_spec(name) is not None
    return {
        "pythonpath": os.environ.get("PYTHONPATH"),
        "sys_path": sys.path,
        "wrapper_env": sorted(k for k in os.environ if k.startswith("LAMBDA_WRAPPER_")),
        "original_handler": os.environ.get("LAMBDA_WRAPPER_HANDLER"),
        "userlib": importable("userlib"),
        "usersite": importable("usersite"),
        "vendor_sitecustomize": os.environ.get("VENDOR_SITECUSTOMIZE"),
    }
"""


@dataclass
class Ran:
    returncode: int
    pid: int
    runtime_pid: int | None
    env: dict[str, str]
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def make_layer(root: Path, with_package: bool = True, entry_source: str = "handler = None\n") -> Path:
    """A layer as it unzips: the wrapper at its root, our package under python/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(WRAPPER, root / "lambda-wrapper")
    (root / "lambda-wrapper").chmod(0o755)
    if with_package:
        supervisor = root / "python" / "lambda_wrapper" / "supervisor"
        (supervisor / "pathhook").mkdir(parents=True)
        (supervisor.parent / "__init__.py").write_text("")
        (supervisor / "__init__.py").write_text("")
        (supervisor / "entry.py").write_text(entry_source)
        shutil.copy2(PATHHOOK, supervisor / "pathhook" / "sitecustomize.py")
    return root


def run_wrapped(
    shell: list[str],
    wrapper: Path | str,
    env: dict[str, str],
    cwd: Path | None = None,
    argv: list[str] | None = None,
) -> Ran:
    process = subprocess.Popen(
        [*shell, str(wrapper), *(FAKE_RUNTIME if argv is None else argv)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = process.communicate(timeout=10)
    return parse(process.returncode, process.pid, stdout, stderr)


def parse(returncode: int, pid: int, stdout: bytes, stderr: bytes) -> Ran:
    first_line, _, rest = stdout.partition(b"\n")
    runtime_pid = int(first_line.split()[1]) if first_line.startswith(b"pid ") else None
    env = dict(entry.decode().split("=", 1) for entry in rest.split(b"\0") if entry)
    return Ran(returncode, pid, runtime_pid, env, stderr.decode())


def unwrapped_env(shell: list[str], env: dict[str, str]) -> dict[str, str]:
    """The environment the fake runtime reports behind a do-nothing script in the same shell.

    Shells add variables of their own (bash exports SHLVL), which are not the wrapper's.
    """
    argv = [*shell, "-c", 'exec "$@"', "passthrough", *FAKE_RUNTIME]
    result = subprocess.run(argv, env=env, capture_output=True, timeout=10, check=True)
    return parse(0, 0, result.stdout, result.stderr).env


@pytest.fixture(params=list(SHELLS), ids=list(SHELLS))
def shell(request: pytest.FixtureRequest) -> list[str]:
    return SHELLS[request.param]


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return make_layer(tmp_path / "layer")


def test_the_shells_we_promise_are_here() -> None:
    # dash is /bin/sh on Debian and Ubuntu (CI); busybox is optional and only widens coverage.
    assert "dash" in SHELLS


# -- exec in place -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["instrumented", "disabled", "no_package", "no_handler"])
def test_execs_the_runtime_in_place(shell: list[str], tmp_path: Path, mode: str) -> None:
    """The runtime keeps the PID the platform started: the wrapper execs, never forks."""
    env = dict(BASE_ENV)
    layer = make_layer(tmp_path / "layer", with_package=mode != "no_package")
    if mode == "disabled":
        env["LAMBDA_WRAPPER_DISABLED"] = "true"
    if mode == "no_handler":
        del env["_HANDLER"]
    ran = run_wrapped(shell, layer / "lambda-wrapper", env)
    assert ran.returncode == 0, ran.stderr
    assert ran.runtime_pid == ran.pid


# -- switched off --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes", "on"])
def test_disabled_leaves_the_environment_untouched(shell: list[str], layer: Path, value: str) -> None:
    env = {**BASE_ENV, "LAMBDA_WRAPPER_DISABLED": value, "PYTHONPATH": "/user/path"}
    ran = run_wrapped(shell, layer / "lambda-wrapper", env)
    assert ran.env == unwrapped_env(shell, env)
    assert ran.stderr == ""


@pytest.mark.parametrize("value", ["false", "0", ""])
def test_other_disabled_values_keep_the_wrapper_on(shell: list[str], layer: Path, value: str) -> None:
    ran = run_wrapped(shell, layer / "lambda-wrapper", {**BASE_ENV, "LAMBDA_WRAPPER_DISABLED": value})
    assert ran.env["_HANDLER"] == ENTRY_HANDLER


# -- the handler redirect ------------------------------------------------------------------


def test_redirects_the_handler_and_keeps_the_original(shell: list[str], layer: Path) -> None:
    ran = run_wrapped(shell, layer / "lambda-wrapper", dict(BASE_ENV))
    assert ran.env["_HANDLER"] == ENTRY_HANDLER
    assert ran.env["LAMBDA_WRAPPER_HANDLER"] == "app.handler"
    assert ran.env["LAMBDA_WRAPPER_ROOT"] == str(layer.resolve())
    assert ran.stderr == ""


def test_a_second_pass_does_not_lose_the_original_handler(shell: list[str], layer: Path) -> None:
    # E.g. the wrapper chained twice: the entry handler must never become the "original".
    env = {**BASE_ENV, "_HANDLER": ENTRY_HANDLER, "LAMBDA_WRAPPER_HANDLER": "app.handler"}
    ran = run_wrapped(shell, layer / "lambda-wrapper", env)
    assert ran.env["_HANDLER"] == ENTRY_HANDLER
    assert ran.env["LAMBDA_WRAPPER_HANDLER"] == "app.handler"


# -- failing open --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["package_missing", "handler_unset"])
def test_fails_open_with_one_line(shell: list[str], tmp_path: Path, case: str) -> None:
    env = dict(BASE_ENV)
    if case == "handler_unset":
        del env["_HANDLER"]
    layer = make_layer(tmp_path / "layer", with_package=case != "package_missing")
    ran = run_wrapped(shell, layer / "lambda-wrapper", env)
    assert ran.returncode == 0
    assert ran.env == unwrapped_env(shell, env)
    assert len(ran.stderr_lines) == 1, ran.stderr
    line = json.loads(ran.stderr_lines[0])
    assert line["logger"] == "lambda_wrapper"
    assert (line["level"], line["event"]) == ("warning", "wrapper_fail_open")


def test_refuses_to_run_without_a_command(shell: list[str], layer: Path) -> None:
    ran = run_wrapped(shell, layer / "lambda-wrapper", dict(BASE_ENV), argv=[])
    assert ran.returncode == 127
    assert len(ran.stderr_lines) == 1
    assert json.loads(ran.stderr_lines[0])["level"] == "error"


# -- where the layer is --------------------------------------------------------------------


def test_finds_its_root_from_its_own_path(shell: list[str], tmp_path: Path) -> None:
    # A copy in a directory with a space, started by a relative path from elsewhere.
    layer = make_layer(tmp_path / "copied layer" / "root")
    ran = run_wrapped(shell, "root/lambda-wrapper", dict(BASE_ENV), cwd=layer.parent)
    root = str(layer.resolve())
    assert ran.env["LAMBDA_WRAPPER_ROOT"] == root
    assert ran.env["PYTHONPATH"] == f"{root}/{HOOK_SUFFIX}"
    assert ran.env["LAMBDA_WRAPPER_PYTHON_DIR"] == f"{root}/python"
    assert ran.env["LAMBDA_WRAPPER_SAVED_PYTHONPATH"] == "unset:"


@pytest.mark.parametrize("user_value", ["/user/a:/user/b", ""])
def test_keeps_the_users_pythonpath_for_the_hook_to_restore(
    shell: list[str], layer: Path, user_value: str
) -> None:
    ran = run_wrapped(shell, layer / "lambda-wrapper", {**BASE_ENV, "PYTHONPATH": user_value})
    hook = f"{layer.resolve()}/{HOOK_SUFFIX}"
    assert ran.env["PYTHONPATH"] == (f"{hook}:{user_value}" if user_value else hook)
    assert ran.env["LAMBDA_WRAPPER_SAVED_PYTHONPATH"] == f"set:{user_value}"


def test_never_exports_pythonpath_when_the_layer_is_at_opt(
    shell: list[str], layer: Path, tmp_path: Path
) -> None:
    """At /opt our package is on the default sys.path; PYTHONPATH would hide the user's layers."""
    skip_unless_rie_can_run()
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = namespace_argv(
        [Bind(layer, "/opt"), Bind(empty, "/tmp", readonly=False)],
        [*shell, "/opt/lambda-wrapper", *FAKE_RUNTIME],
        cwd="/",
    )
    result = subprocess.run(argv, env=dict(BASE_ENV), capture_output=True, timeout=20)
    ran = parse(result.returncode, 0, result.stdout, result.stderr)
    assert result.returncode == 0, ran.stderr
    assert ran.env["_HANDLER"] == ENTRY_HANDLER
    assert ran.env["LAMBDA_WRAPPER_ROOT"] == "/opt"
    assert "PYTHONPATH" not in ran.env
    assert "LAMBDA_WRAPPER_SAVED_PYTHONPATH" not in ran.env
    assert "LAMBDA_WRAPPER_PYTHON_DIR" not in ran.env


# -- the real start-up chain on the RIE ------------------------------------------------------

ELSEWHERE = "/var/lambda-wrapper-layer"


def python_site_dir() -> str:
    return f"python/lib/python{ensure_runtime_image().python_version}/site-packages"


@pytest.fixture
def function_parts(tmp_path: Path) -> dict[str, Path]:
    """Our stub layer, the function's own layer (meant for /opt) and a task root."""
    ours = make_layer(tmp_path / "ours", entry_source=REPORTING_ENTRY)
    theirs = tmp_path / "theirs"
    (theirs / "python").mkdir(parents=True)
    (theirs / "python" / "userlib.py").write_text("VALUE = 1\n")
    (theirs / python_site_dir()).mkdir(parents=True)
    (theirs / python_site_dir() / "usersite.py").write_text("VALUE = 2\n")
    task = tmp_path / "task"
    (task / "vendor").mkdir(parents=True)
    (task / "app.py").write_text("def handler(event, context):\n    return 'unwrapped'\n")
    (task / "vendor" / "sitecustomize.py").write_text(
        "import os\nos.environ['VENDOR_SITECUSTOMIZE'] = 'ran'\n"
    )
    return {"ours": ours, "theirs": theirs, "task": task}


def assert_hook_left_no_trace(report: dict[str, Any]) -> None:
    # The wrapper's own variables (handler, root, timings, tweaks) may stay; the hook's
    # hand-over variables must be consumed before any user code runs.
    assert "LAMBDA_WRAPPER_HANDLER" in report["wrapper_env"]
    assert "LAMBDA_WRAPPER_SAVED_PYTHONPATH" not in report["wrapper_env"]
    assert "LAMBDA_WRAPPER_PYTHON_DIR" not in report["wrapper_env"]


def report_from_rie(open_platform: Callable[[str], Platform], spec: FunctionUnderTest) -> dict[str, Any]:
    platform = open_platform("rie")
    platform.start(spec)
    invocation = platform.invoke(b"{}")
    assert invocation.status_code == 200, platform.output()[-3000:]
    report = invocation.json
    assert isinstance(report, dict) and "sys_path" in report, (report, platform.output()[-3000:])
    # The hook is invisible: the interpreter's start-up reported no error in it.
    assert "Error in sitecustomize" not in platform.output(), platform.output()[-3000:]
    return report


def test_layer_elsewhere_keeps_the_functions_layers_importable(
    open_platform: Callable[[str], Platform], function_parts: dict[str, Path]
) -> None:
    """The OpenTelemetry #1714 trap: a wrapper that exports PYTHONPATH hides /opt/python."""
    report = report_from_rie(
        open_platform,
        FunctionUnderTest(
            task_root=function_parts["task"],
            layer_dir=function_parts["theirs"],
            env={"AWS_LAMBDA_EXEC_WRAPPER": f"{ELSEWHERE}/lambda-wrapper"},
            extra_binds={ELSEWHERE: function_parts["ours"]},
        ),
    )
    # bootstrap.py saw no PYTHONPATH, so it built the default path and then set its own.
    assert report["pythonpath"] == "/var/runtime"
    assert report["userlib"] and report["usersite"]
    assert "/opt/python" in report["sys_path"]
    assert report["sys_path"][-1] == f"{ELSEWHERE}/python"
    assert not any(entry.endswith("pathhook") for entry in report["sys_path"])
    assert_hook_left_no_trace(report)
    assert report["original_handler"] == "app.handler"


def test_layer_elsewhere_restores_the_users_pythonpath_exactly(
    open_platform: Callable[[str], Platform], function_parts: dict[str, Path]
) -> None:
    report = report_from_rie(
        open_platform,
        FunctionUnderTest(
            task_root=function_parts["task"],
            layer_dir=function_parts["theirs"],
            env={"AWS_LAMBDA_EXEC_WRAPPER": f"{ELSEWHERE}/lambda-wrapper", "PYTHONPATH": "/var/task/vendor"},
            extra_binds={ELSEWHERE: function_parts["ours"]},
        ),
    )
    assert report["pythonpath"] == "/var/task/vendor"
    assert report["sys_path"][-1] == f"{ELSEWHERE}/python"
    assert "/var/task/vendor" in report["sys_path"]
    # The user's own sitecustomize still ran after our one-shot hook.
    assert report["vendor_sitecustomize"] == "ran"


def test_layer_at_opt_needs_no_hook(
    open_platform: Callable[[str], Platform], function_parts: dict[str, Path]
) -> None:
    report = report_from_rie(
        open_platform,
        FunctionUnderTest(
            task_root=function_parts["task"], layer_dir=function_parts["ours"], use_wrapper=True
        ),
    )
    assert report["pythonpath"] == "/var/runtime"
    assert "/opt/python" in report["sys_path"]
    assert not any(entry.endswith("pathhook") for entry in report["sys_path"])
    assert_hook_left_no_trace(report)


def test_runs_under_the_platforms_sh_with_a_clean_environment(shell: list[str], layer: Path) -> None:
    # Lambda's environment has no HOME, no TERM, nothing interactive: the script must
    # not depend on any of them (set -u style surprises, unset IFS, and so on).
    ran = run_wrapped(shell, layer / "lambda-wrapper", {"_HANDLER": "app.handler", "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    assert ran.env["_HANDLER"] == ENTRY_HANDLER
    assert os.path.isdir(ran.env["LAMBDA_WRAPPER_ROOT"])
