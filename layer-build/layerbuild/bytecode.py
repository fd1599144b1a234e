"""Precompile the layer's Python sources with every available interpreter.

/opt is read-only on Lambda, so bytecode the runtime compiles at import is thrown away and paid
again on every cold start. Shipping .pyc files removes that cost, but only if the interpreter
accepts them as they are: see layer-build/README.md for why the mode is `unchecked-hash`.

To fit the size gate the shipped bytecode is also slimmed, without touching the sources or any line
number (see "What the shipped bytecode leaves out" in layer-build/README.md):
- docstrings are left out of the compiled code (`__doc__` is None; `help()` shows no text);
- on 3.11+, the column tables are left out (`-X no_debug_ranges`): tracebacks keep file, line and
  source text and lose only the `^^^^` markers under it.
Asserts stay (optimize=0), and the pycs sit at the plain `cpython-3XY.pyc` path the runtime reads.
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
# The first version whose code objects carry column positions (PEP 657), and so honour no_debug_ranges.
_DEBUG_RANGES_SINCE = (3, 11)

# Where the tree's files sit at run time; recorded as co_filename so the .pyc bytes do not depend
# on the temporary directory the build happened in. (Import rewrites co_filename to the real
# source path anyway, so tracebacks point at the shipped sources.)
RUNTIME_SITE_DIR = "/opt/python"

# Runs inside each target interpreter: compiles the relative paths given on stdin to the pyc that
# py_compile.compile would write (same header, same path), with an AST step between parse and compile.
_COMPILER = """
import ast, marshal, os, struct, sys
import importlib.util

root, runtime_dir, mode, strip = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

def is_string_statement(node):
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
        node.value.value, str
    )

def is_dataclass(node):
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if getattr(target, "attr", getattr(target, "id", None)) == "dataclass":
            return True
    return False

def strip_docstrings(tree):
    # Every other node keeps its own position, so no line number moves. A bare string left first
    # would become the docstring in turn, so those go too. An emptied body gets a `pass` on the
    # code object's first line (the first decorator's, else the `def`/`class` line), where a plain
    # compile puts the implicit `return None` of a docstring-only body.
    for node in ast.walk(tree):
        if not (isinstance(node, OWNERS) and node.body and is_string_statement(node.body[0])):
            continue
        if isinstance(node, ast.ClassDef) and is_dataclass(node):
            # @dataclass gives a class without a docstring one made with inspect.signature, at
            # import (about 0.1 ms a class); the summary line keeps it from doing that.
            constant = node.body[0].value
            constant.value = constant.value.strip().split("\\n", 1)[0] or constant.value
            continue
        if isinstance(node, ast.Module):
            first = node.body[0]
        else:
            first = (node.decorator_list or [node])[0]
        while node.body and is_string_statement(node.body[0]):
            del node.body[0]
        if not node.body:
            line, column = first.lineno, first.col_offset
            node.body.append(ast.Pass(lineno=line, col_offset=column, end_lineno=line, end_col_offset=column))

failures = []
for relative in sys.stdin.read().splitlines():
    path, dfile = root + "/" + relative, runtime_dir + "/" + relative
    try:
        with open(path, "rb") as stream:
            source = stream.read()
        tree = ast.parse(source, dfile)
        if strip:
            strip_docstrings(tree)
        code = compile(tree, dfile, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError) as error:
        failures.append(type(error).__name__ + ": " + str(error) + " in " + relative)
        continue
    # PEP 552 header: magic, flags, then the source's mtime and size or its hash.
    if mode == "timestamp":
        stat = os.stat(path)
        header = struct.pack("<II", int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF)
        flags = 0
    else:
        header = importlib.util.source_hash(source)
        flags = 0b01 | (0b10 if mode == "checked-hash" else 0)
    cached = importlib.util.cache_from_source(path)  # the optimize=0 path: cpython-3XY.pyc
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    with open(cached + ".partial", "wb") as stream:
        stream.write(importlib.util.MAGIC_NUMBER + struct.pack("<I", flags) + header + marshal.dumps(code))
    os.replace(cached + ".partial", cached)
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


def compiler_command(
    interpreter: Interpreter, site_dir: Path, mode: str, *, strip_docstrings: bool, debug_ranges: bool
) -> list[str]:
    """The command that compiles the sources listed on its stdin with `interpreter`."""
    command = [str(interpreter.executable), "-S"]
    version = tuple(int(part) for part in interpreter.version.split("."))
    if not debug_ranges and version >= _DEBUG_RANGES_SINCE:
        # Applies to everything this process compiles; 3.10 has no column tables to drop.
        command += ["-X", "no_debug_ranges"]
    return [
        *command,
        "-c",
        _COMPILER,
        str(site_dir),
        RUNTIME_SITE_DIR,
        mode,
        "1" if strip_docstrings else "0",
    ]


def compile_tree(
    site_dir: Path,
    interpreters: list[Interpreter],
    progress: Progress,
    mode: str = INVALIDATION_MODE,
    label: str = "",
    restricted: Mapping[str, tuple[str, ...]] | None = None,
    *,
    strip_docstrings: bool = True,
    debug_ranges: bool = False,
) -> None:
    if mode not in INVALIDATION_MODES:
        raise LayerBuildError(f"unknown bytecode invalidation mode {mode!r}")

    def run(interpreter: Interpreter) -> None:
        slimmed = [
            part
            for part, dropped in (("docstrings", strip_docstrings), ("column tables", not debug_ranges))
            if dropped
        ]
        without = f" without {' or '.join(slimmed)}" if slimmed else ""
        progress.step(f"{label}compiling {mode} bytecode{without} with python {interpreter.full_version}")
        sources = "\n".join(sources_to_compile(site_dir, interpreter.version, restricted))
        command = compiler_command(
            interpreter, site_dir, mode, strip_docstrings=strip_docstrings, debug_ranges=debug_ranges
        )
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
    # any other PYTHON* variable from the caller's shell could change what gets compiled
    # (PYTHONNODEBUGRANGES, PYTHONOPTIMIZE, ...): what is compiled is decided by the command alone.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment["PYTHONHASHSEED"] = "0"
    return environment
