"""Every Lambda Python found here really runs as itself, on the sandbox and on the RIE.

The end-to-end core (handler equivalence, SIGTERM flush, the telemetry pipeline, the
layer from the built zip) takes ``runtime_python`` and so runs once per interpreter.
That only means something if each run is what Lambda would run: the runtime's
interpreter is that version, ``AWS_EXECUTION_ENV`` names it (set by the bootstrap, never
by a test), awslambdaric polls ``/next`` the way it does for that runtime, and the
wrapper, not a fail-open bypass, handled the call. This module checks exactly that.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from platforms import PLATFORMS, FunctionUnderTest, Platform
from runtime_pythons import (
    CI_REQUIRED_PYTHONS,
    available_runtime_pythons,
    execution_env,
    host_python_version,
    polls_from_a_thread,
    running_in_ci,
)

# Reports the runtime it runs in: the interpreter, AWS_EXECUTION_ENV, the mode of the
# awslambdaric client that called it (found on the call stack, in bootstrap.run) and
# what the wrapper's own doctor concludes from the environment.
FUNCTION = textwrap.dedent(
    """
    import os, sys

    def polling_mode():
        frame = sys._getframe()
        while frame is not None:
            client = frame.f_locals.get("lambda_runtime_client")
            if client is not None:
                return "thread" if client.use_thread_for_polling_next else "blocking"
            frame = frame.f_back
        return None

    def handler(event, context):
        from lambda_wrapper import doctor

        detected = doctor.runtime_client_mode(os.environ, extension_enabled=True)
        return {
            "python": "%d.%d" % sys.version_info[:2],
            "executable": sys.executable,
            "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
            "polling": polling_mode(),
            "doctor_mode": detected["mode"],
            "wrapped": "lambda_wrapper.supervisor.entry" in sys.modules,
        }
    """
)


def test_matrix_is_never_empty_and_holds_the_host() -> None:
    versions = available_runtime_pythons()
    assert versions, "no Lambda Python (3.10+) found: the end-to-end core would run nowhere"
    assert host_python_version() in versions, versions


def test_ci_runs_every_python_its_machines_carry() -> None:
    """In CI a missing interpreter is a broken machine, not a smaller matrix."""
    missing = [version for version in CI_REQUIRED_PYTHONS if version not in available_runtime_pythons()]
    if running_in_ci():
        assert missing == [], f"CI=true but no working python{', python'.join(missing)} on this machine"


@pytest.mark.parametrize("platform_name", list(PLATFORMS))
def test_runtime_runs_as_its_own_version(
    open_platform: Callable[[str], Platform],
    layer_dir: Path,
    tmp_path: Path,
    platform_name: str,
    runtime_python: str,
) -> None:
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(FUNCTION)
    platform = open_platform(platform_name)
    platform.start(
        FunctionUnderTest(
            task_root=task_root, layer_dir=layer_dir, use_wrapper=True, python_version=runtime_python
        )
    )
    result = platform.invoke(b"{}")
    assert result.status_code == 200, platform.output()[-3000:]
    facts = result.json
    assert facts["python"] == runtime_python, json.dumps(facts)
    assert facts["execution_env"] == execution_env(runtime_python), json.dumps(facts)
    expected_mode = "thread" if polls_from_a_thread(runtime_python) else "blocking"
    assert facts["polling"] == expected_mode, json.dumps(facts)
    assert facts["doctor_mode"] == ("thread polling" if expected_mode == "thread" else "blocking")
    assert facts["wrapped"] is True, platform.output()[-3000:]
