"""The platform's names are spelled once (``aws.py``), our own variables once (the settings in
``variables.py``, the wrapper's hand-over variables in ``settings.py``'s ``Handover``): no other
module of the runtime package writes one of them as a string literal."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lambda_wrapper import aws
from lambda_wrapper.settings import Handover

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "lambda_wrapper"
WRAPPER_SCRIPT = ROOT / "wrapper" / "lambda-wrapper"
PATH_HOOK = PACKAGE / "supervisor" / "pathhook" / "sitecustomize.py"
# Where the platform's names are declared, relative to the package; variables.py and
# settings.py declare our own (the settings, and the hand-over variables).
DECLARED_IN = {"aws.py"}
SETTINGS_MODULES = {"variables.py", "settings.py"}

ENVIRONMENT_NAME = re.compile(
    r"(AWS_[A-Z_]+|_X_AMZN_TRACE_ID|_HANDLER|LAMBDA_TASK_ROOT|TMPDIR|LAMBDA_WRAPPER_[A-Z0-9_]*[A-Z0-9])"
)
PLATFORM_VALUES = {
    value for name, value in vars(aws).items()
    if name.isupper() and isinstance(value, str) and not ENVIRONMENT_NAME.fullmatch(value)
}
# Parts of a platform value that give it away inside a longer string (a URL, a route).
PLATFORM_FRAGMENTS = (aws.SANDBOX_HOST, aws.EXTENSION_API, aws.TELEMETRY_API)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def spelled_names(source: str) -> list[str]:
    """The string literals in ``source`` that are an environment name or a platform value."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        text = node.value
        whole = ENVIRONMENT_NAME.fullmatch(text) or text in PLATFORM_VALUES
        if whole or any(fragment in text for fragment in PLATFORM_FRAGMENTS):
            found.append(text)
    return found


def test_no_module_spells_a_platform_or_wrapper_name_itself() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in DECLARED_IN or path == PATH_HOOK:
            continue
        names = spelled_names(path.read_text(encoding="utf-8"))
        if relative in SETTINGS_MODULES:
            names = [name for name in names if not name.startswith("LAMBDA_WRAPPER_")]
        if names:
            offenders[relative] = names
    assert offenders == {}


def test_the_scan_sees_a_spelled_name() -> None:
    source = 'import os\nos.environ.get("AWS_REGION")\nURL = f"http://sandbox.localdomain:{1}"\nT = "/tmp"\n'
    assert sorted(spelled_names(source)) == ["/tmp", "AWS_REGION", "http://sandbox.localdomain:"]


def test_hand_over_names_are_the_ones_the_wrapper_script_sets() -> None:
    script = WRAPPER_SCRIPT.read_text(encoding="utf-8")
    assigned = set(re.findall(r"^\s*(LAMBDA_WRAPPER_[A-Z0-9_]+)=", script, re.MULTILINE))
    assert assigned == set(Handover.ALL)


def test_the_path_hook_reads_hand_over_names() -> None:
    spelled = set(re.findall(r'"(LAMBDA_WRAPPER_[A-Z0-9_]+)"', PATH_HOOK.read_text(encoding="utf-8")))
    assert spelled
    assert spelled <= set(Handover.ALL)


def test_tmp_dir_falls_back_to_tmp_when_tmpdir_is_unset_or_empty(monkeypatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    assert aws.tmp_dir() == "/tmp"
    monkeypatch.setenv("TMPDIR", "")
    assert aws.tmp_dir() == "/tmp"
    monkeypatch.setenv("TMPDIR", "/var/scratch")
    assert aws.tmp_dir() == "/var/scratch"
    assert aws.wrapper_tmp_dir() == "/var/scratch/lambda-wrapper"
