"""Precompile the layer's Python sources with every available interpreter.

/opt is read-only on Lambda, so bytecode the runtime compiles at import is thrown away and paid
again on every cold start. Shipping .pyc files removes that cost, but only if the interpreter
accepts them as they are: see layer-build/README.md for why the mode is `unchecked-hash`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import LayerBuildError
from .interpreters import Interpreter
from .progress import Progress

INVALIDATION_MODE = "unchecked-hash"
INVALIDATION_MODES = ("timestamp", "checked-hash", "unchecked-hash")

# Where the tree's files sit at run time; recorded as co_filename so the .pyc bytes do not depend
# on the temporary directory the build happened in. (Import rewrites co_filename to the real
# source path anyway, so tracebacks point at the shipped sources.)
RUNTIME_SITE_DIR = "/opt/python"

# Runs inside each target interpreter: compiles the relative paths given on stdin.
_COMPILER = """
import py_compile, sys
root, runtime_dir, mode_name = sys.argv[1:4]
mode = py_compile.PycInvalidationMode[mode_name]
failures = []
for relative in sys.stdin.read().splitlines():
    try:
        py_compile.compile(
            root + "/" + relative, dfile=runtime_dir + "/" + relative,
            doraise=True, optimize=0, invalidation_mode=mode,
        )
    except py_compile.PyCompileError as error:
        failures.append(error.msg.strip().splitlines()[-1] + " in " + relative)
if failures:
    sys.stderr.write("\\n".join(failures) + "\\n")
    sys.exit(1)
"""


def python_sources(site_dir: Path) -> list[str]:
    """Every .py file under `site_dir`, as sorted POSIX paths relative to it."""
    return sorted(path.relative_to(site_dir).as_posix() for path in site_dir.rglob("*.py"))


def sources_to_compile(
    site_dir: Path, version: str, restricted: Mapping[str, tuple[str, ...]] | None = None
) -> list[str]:
    """The sources that get `version` bytecode: all but those never imported under that runtime.

    `restricted` maps a source to the only runtime versions that import it.
    """
    restricted = restricted or {}
    return [source for source in python_sources(site_dir) if version in restricted.get(source, (version,))]


def compile_tree(
    site_dir: Path,
    interpreters: list[Interpreter],
    progress: Progress,
    mode: str = INVALIDATION_MODE,
    label: str = "",
    restricted: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    if mode not in INVALIDATION_MODES:
        raise LayerBuildError(f"unknown bytecode invalidation mode {mode!r}")
    mode_name = mode.replace("-", "_").upper()

    def run(interpreter: Interpreter) -> None:
        progress.step(f"{label}compiling {mode} bytecode with python {interpreter.full_version}")
        sources = "\n".join(sources_to_compile(site_dir, interpreter.version, restricted))
        command = [
            str(interpreter.executable),
            "-S",
            "-c",
            _COMPILER,
            str(site_dir),
            RUNTIME_SITE_DIR,
            mode_name,
        ]
        result = subprocess.run(
            command, input=sources, capture_output=True, text=True, env=_compiler_environment(), check=False
        )
        if result.returncode != 0:
            detail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise LayerBuildError(f"python {interpreter.full_version} could not compile the layer: {detail}")

    # One process per interpreter; they write disjoint files (cpython-3XY.pyc), so they can overlap.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(run, interpreter) for interpreter in interpreters]:
            future.result()


def _compiler_environment() -> dict[str, str]:
    # A fixed hash seed makes frozenset constants marshal in the same order in every build;
    # any other PYTHON* variable from the caller's shell could change what gets compiled.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment["PYTHONHASHSEED"] = "0"
    return environment
