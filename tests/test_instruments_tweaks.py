"""The wrapper's environment tweaks: one switch each, documented defaults, never over the user's values."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from function_runs import run_function
from lambda_wrapper.instruments import tweaks
from lambda_wrapper.settings import Handover, Settings
from lambda_wrapper.variables import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[1]
WRAPPER = REPO_ROOT / "wrapper" / "lambda-wrapper"
TWEAK_LINE = re.compile(
    r'tweak_on "\$\{(?P<switch>LAMBDA_WRAPPER_TWEAK_\w+):-\}" (?P<default>on|off) '
    r'&& \[ -z "\$\{(?P<variable>\w+)\+set\}" \]; then\n\s+(?P=variable)=(?P<value>\S+)\n'
)
CRASHING = {
    "app.py": """
        import ctypes

        def crash_in_c_code():
            ctypes.string_at(0)

        def handler(event, context):
            crash_in_c_code()
    """
}


def wrapper_environment(layer_dir: Path, shell: str, **variables: str) -> dict[str, str]:
    """The environment the runtime would get from the wrapper (it execs ``env`` here)."""
    env = {"PATH": os.environ["PATH"], "_HANDLER": "app.handler", **variables}
    result = subprocess.run(
        [shell, str(layer_dir / "lambda-wrapper"), "env"], env=env, capture_output=True, text=True, check=True
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_script_table_and_settings_agree() -> None:
    in_script = {m["switch"]: m for m in TWEAK_LINE.finditer(WRAPPER.read_text())}
    settings = {s.name: s for s in SETTINGS if s.name.startswith("LAMBDA_WRAPPER_TWEAK_")}
    assert set(in_script) == set(settings) == {t.switch for t in tweaks.TWEAKS}
    for tweak in tweaks.TWEAKS:
        line, setting = in_script[tweak.switch], settings[tweak.switch]
        assert (line["variable"], line["value"]) == (tweak.variable, tweak.value)
        assert (line["default"] == "on") is setting.default, f"{tweak.switch}: script and settings.py differ"
        assert setting.attribute == tweak.attribute
        assert f"{tweak.variable}=" in setting.description


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_defaults_are_applied_and_listed(layer_dir: Path, shell: str) -> None:
    env = wrapper_environment(layer_dir, shell)
    defaults = Settings({})
    for tweak in tweaks.TWEAKS:
        if getattr(defaults, tweak.attribute):
            assert env[tweak.variable] == tweak.value
        else:
            assert tweak.variable not in env
    expected = [t.key for t in tweaks.TWEAKS if getattr(defaults, t.attribute)]
    assert tweaks.applied(env) == expected


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_user_values_are_never_overridden(layer_dir: Path, shell: str) -> None:
    env = wrapper_environment(
        layer_dir,
        shell,
        PYTHONFAULTHANDLER="",
        PYTHONDONTWRITEBYTECODE="0",
        MALLOC_ARENA_MAX="8",
        LAMBDA_WRAPPER_TWEAK_MALLOC_ARENA_MAX="true",
    )
    assert (env["PYTHONFAULTHANDLER"], env["PYTHONDONTWRITEBYTECODE"], env["MALLOC_ARENA_MAX"]) == (
        "",
        "0",
        "8",
    )
    assert tweaks.applied(env) == []


def test_each_switch_works_and_garbage_keeps_the_default(layer_dir: Path) -> None:
    env = wrapper_environment(
        layer_dir,
        "sh",
        LAMBDA_WRAPPER_TWEAK_FAULTHANDLER="OFF",
        LAMBDA_WRAPPER_TWEAK_NO_DEBUG_RANGES=" Yes ",  # blanks ignored, as settings.py does
        LAMBDA_WRAPPER_TWEAK_DONT_WRITE_BYTECODE="maybe",
    )
    assert "PYTHONFAULTHANDLER" not in env
    assert env["PYTHONNODEBUGRANGES"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the default, as settings.py reports
    assert Settings({"LAMBDA_WRAPPER_TWEAK_DONT_WRITE_BYTECODE": "maybe"}).tweak_dont_write_bytecode is True


def test_the_kill_switch_applies_no_tweak(layer_dir: Path) -> None:
    env = wrapper_environment(layer_dir, "sh", LAMBDA_WRAPPER_DISABLED="true")
    assert not {t.variable for t in tweaks.TWEAKS} & set(env)
    assert Handover.TWEAKS_APPLIED not in env


# -- end to end -------------------------------------------------------------------------


def test_faulthandler_shows_where_a_crash_happened(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(layer_dir, tmp_path / "on", CRASHING)
    assert run.results[0].status != "success"
    text = run.text()
    assert "Fatal Python error: Segmentation fault" in text, text
    assert re.search(r'File "/var/task/app.py", line \d+ in crash_in_c_code', text), text

    quiet = run_function(
        layer_dir, tmp_path / "off", CRASHING, env={"LAMBDA_WRAPPER_TWEAK_FAULTHANDLER": "false"}
    )
    assert quiet.results[0].status != "success"
    assert "crash_in_c_code" not in quiet.text()


def test_no_bytecode_is_written_into_the_code_directory(layer_dir: Path, tmp_path: Path) -> None:
    # Host mode: nothing is read-only, so a .pyc write would succeed (on Lambda it
    # fails with EROFS after the work of serialising the code was done).
    sources = {
        "app.py": "import helper\n\ndef handler(event, context):\n    return helper.VALUE\n",
        "helper.py": "VALUE = 1\n",
    }
    run_function(layer_dir, tmp_path / "on", sources, use_namespace=False)
    assert not list((tmp_path / "on" / "task").rglob("*.pyc"))
    run_function(
        layer_dir,
        tmp_path / "off",
        sources,
        use_namespace=False,
        env={"LAMBDA_WRAPPER_TWEAK_DONT_WRITE_BYTECODE": "false"},
    )
    assert list((tmp_path / "off" / "task").rglob("helper*.pyc"))
