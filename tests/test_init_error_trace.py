"""An init error reaches the caller exactly as without the wrapper, on every interpreter.

For each broken sample function of ``tests/functions`` the sandbox runs it on the
runtime image of each Python version found here, once bare and once through the
wrapper. The caller's status, ``errorType``, ``errorMessage`` and the whole
``stackTrace`` must be equal: the wrapper's frames (entry, supervisor, handler
loader, and the import chain that loads the user's module from inside ours) are
hidden the way awslambdaric hides its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox.runtime_image import find_interpreter

# The Python versions Lambda runs that awslambdaric 4.2.2 supports.
LAMBDA_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
INIT_FAILURES = {
    "import_error.handler": "RuntimeError",
    "syntax_error.handler": "Runtime.UserCodeSyntaxError",
    "nope.handler": "Runtime.ImportModuleError",
    "healthy.missing": "Runtime.HandlerNotFound",
}
# Files of ours that must never show in a caller's stack trace.
OUR_FILES = ("/opt/python/lambda_wrapper/", "/var/runtime/awslambdaric/bootstrap.py")


def present_pythons() -> list[str]:
    present = []
    for version in LAMBDA_PYTHONS:
        try:
            find_interpreter(version)
        except RuntimeError:
            continue
        present.append(version)
    return present


@dataclass(frozen=True)
class InitFailure:
    status_code: int
    document: Any
    extensions: tuple[str, ...]  # names of the extensions that registered
    output: str


_failures: dict[tuple[str, str, bool], InitFailure] = {}


def init_failure(
    task_root: Path, layer_dir: Path, python_version: str, handler: str, wrapped: bool
) -> InitFailure:
    """What the caller of the first invoke gets (one run per module and combination)."""
    key = (python_version, handler, wrapped)
    if key not in _failures:
        spec = FunctionSpec(
            task_root=task_root,
            handler=handler,
            layer_dir=layer_dir if wrapped else None,
            use_wrapper=wrapped,
            python_version=python_version,
            function_name="init-error-trace",
        )
        with Sandbox(spec) as sandbox:
            result = sandbox.invoke(payload=b"{}")
            extensions = tuple(str(agent["name"]) for agent in sandbox.registered_extensions)
            _failures[key] = InitFailure(
                result.status_code, result.json(), extensions, "\n".join(sandbox.function_output)
            )
    return _failures[key]


@pytest.mark.parametrize("handler", list(INIT_FAILURES))
@pytest.mark.parametrize("python_version", present_pythons())
def test_wrapped_init_error_equals_the_bare_one(
    functions_task_root: Path, layer_dir: Path, python_version: str, handler: str
) -> None:
    bare = init_failure(functions_task_root, layer_dir, python_version, handler, wrapped=False)
    wrapped = init_failure(functions_task_root, layer_dir, python_version, handler, wrapped=True)
    assert bare.status_code == 502 and bare.document["errorType"] == INIT_FAILURES[handler], bare
    # The wrapper really ran (it did not fail open): its internal extension registered.
    assert any(name.startswith("lambda-wrapper.") for name in wrapped.extensions), wrapped.output[-3000:]
    assert wrapped.status_code == bare.status_code, wrapped.output[-3000:]
    assert wrapped.document == bare.document, wrapped.output[-3000:]
    assert not [line for line in wrapped.document["stackTrace"] if any(name in line for name in OUR_FILES)]
