"""Settings: a bad value disables its feature with one clear line; strict mode fails Init.

Unit tests of ``Settings`` and the README reference, then two end-to-end runs: every
``LAMBDA_WRAPPER_*`` variable set to garbage (the function still answers, one line per
variable), and the same under ``LAMBDA_WRAPPER_STRICT=true`` (Init fails naming them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from function_runs import run_function
from lambda_wrapper.settings import Settings
from lambda_wrapper.variables import SETTINGS
from lambda_wrapper_dev.settings_reference import render_reference

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from update_readme import BEGIN, END, updated  # noqa: E402

GARBAGE = "garbage: \x01 \u00e9!"  # invalid for every type of setting
WRAPPER_SETTINGS = [s.name for s in SETTINGS if s.name.startswith("LAMBDA_WRAPPER_")]
HEALTHY = {"app.py": "def handler(event, context):\n    return {'ok': True}\n"}


def test_defaults_have_no_problems() -> None:
    settings = Settings({})
    assert settings.problems == []
    assert settings.logs == "off"
    assert settings.process_metrics is False
    assert settings.timeout_warning_ms == 0
    assert settings.memory_warning_pct == 0
    assert settings.import_profile == 0
    assert settings.strict is False


def test_every_setting_has_a_typed_attribute() -> None:
    annotations = Settings.__annotations__
    for setting in SETTINGS:
        assert setting.attribute in annotations, f"{setting.name}: no typed attribute {setting.attribute}"
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


@pytest.mark.parametrize("name", WRAPPER_SETTINGS)
def test_a_bad_value_gives_one_line_naming_variable_value_and_accepted(name: str) -> None:
    settings = Settings({name: GARBAGE})
    setting = next(s for s in SETTINGS if s.name == name)
    assert [p.name for p in settings.problems] == [name]
    line = settings.problems[0].describe()
    assert "\n" not in line
    assert name in line
    assert setting.accepted in line
    if setting.secret:
        assert GARBAGE not in line
    else:
        assert repr(GARBAGE) in line
    if setting.feature is not None:
        assert not settings.feature_enabled(setting.feature)
        assert setting.feature in line
    else:
        assert getattr(settings, setting.attribute) == (
            setting.default if setting.default is not None else getattr(Settings({}), setting.attribute)
        )


@pytest.mark.parametrize(
    ("name", "raw", "attribute", "expected"),
    [
        ("LAMBDA_WRAPPER_LOGS", "StructLog", "logs", "structlog"),
        ("LAMBDA_WRAPPER_PROCESS_METRICS", " yes ", "process_metrics", True),
        ("LAMBDA_WRAPPER_TIMEOUT_WARNING_MS", "500", "timeout_warning_ms", 500),
        ("LAMBDA_WRAPPER_MEMORY_WARNING_PCT", "90", "memory_warning_pct", 90),
        ("LAMBDA_WRAPPER_IMPORT_PROFILE", "20", "import_profile", 20),
        ("LAMBDA_WRAPPER_TWEAK_MALLOC_ARENA_MAX", "on", "tweak_malloc_arena_max", True),
        ("LAMBDA_WRAPPER_TWEAK_FAULTHANDLER", "0", "tweak_faulthandler", False),
    ],
)
def test_good_values_parse(name: str, raw: str, attribute: str, expected: object) -> None:
    settings = Settings({name: raw})
    assert settings.problems == []
    assert getattr(settings, attribute) == expected


@pytest.mark.parametrize("raw", ["-1", "101", "1.5", "ninety"])
def test_out_of_range_numbers_switch_the_feature_off(raw: str) -> None:
    settings = Settings({"LAMBDA_WRAPPER_MEMORY_WARNING_PCT": raw})
    assert not settings.feature_enabled("the memory warning")
    assert settings.memory_warning_pct == 0


def test_an_empty_value_means_the_default() -> None:
    assert Settings({"LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": ""}).problems == []


def test_secret_values_are_never_shown() -> None:
    secret = "Authorization=Bearer%20s3cr3t-t0ken"
    settings = Settings(
        {"OTEL_EXPORTER_OTLP_HEADERS": secret + ",bad header", "LAMBDA_WRAPPER_HTTP_HEADERS": secret + "\n"}
    )
    assert {p.name for p in settings.problems} == {
        "OTEL_EXPORTER_OTLP_HEADERS",
        "LAMBDA_WRAPPER_HTTP_HEADERS",
    }
    for problem in settings.problems:
        assert "s3cr3t" not in problem.describe()
        assert "<redacted>" in problem.describe()
    assert {setting.name for setting in SETTINGS if setting.secret} == {
        "OTEL_EXPORTER_OTLP_HEADERS",
        "LAMBDA_WRAPPER_HTTP_HEADERS",
    }


def test_readme_reference_matches_the_settings() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert BEGIN in readme and END in readme
    assert updated(readme) == readme, "README drifted from variables.py: run `make docs`"
    for setting in SETTINGS:
        assert f"`{setting.name}`" in render_reference()


def test_readme_drift_is_detected() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    drifted = readme.replace("`LAMBDA_WRAPPER_IMPORT_PROFILE` | `0`", "`LAMBDA_WRAPPER_IMPORT_PROFILE` | `5`")
    assert drifted != readme
    assert updated(drifted) != drifted


# -- end to end -------------------------------------------------------------------------


def test_garbage_in_every_variable_still_answers_with_one_line_each(layer_dir: Path, tmp_path: Path) -> None:
    env = dict.fromkeys(WRAPPER_SETTINGS, GARBAGE)
    run = run_function(layer_dir, tmp_path, HEALTHY, env=env)
    assert run.results[0].status_code == 200, run.text()
    assert run.results[0].json() == {"ok": True}
    lines = run.diagnostics("invalid_setting")
    assert sorted(line["variable"] for line in lines) == sorted(WRAPPER_SETTINGS), run.text()
    for line in lines:
        assert line["variable"] in line["message"]
        assert "accepted:" in line["message"]


def test_strict_mode_turns_garbage_into_an_init_error(layer_dir: Path, tmp_path: Path) -> None:
    env = dict.fromkeys(WRAPPER_SETTINGS, GARBAGE)
    env["LAMBDA_WRAPPER_STRICT"] = "true"
    run = run_function(layer_dir, tmp_path, HEALTHY, env=env)
    result = run.results[0]
    assert result.status_code != 200 or result.status != "success", run.text()
    error = result.json()
    assert error["errorType"] == "InvalidSettingsError", error
    assert "LAMBDA_WRAPPER_STRICT=true" in error["errorMessage"], error
    for name in WRAPPER_SETTINGS:
        if name != "LAMBDA_WRAPPER_STRICT":
            assert name in error["errorMessage"]
    init = [e for e in run.events if e["type"] == "platform.initRuntimeDone"]
    assert init and init[0]["record"]["status"] != "success"


def test_every_default_belongs_to_a_declared_variable() -> None:
    # A default is the Settings attribute of the variable that sets it: none without one.
    assert set(Settings.__annotations__) == {setting.attribute for setting in SETTINGS}
