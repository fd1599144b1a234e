"""The layer ships one package of ours, ``lambda_wrapper``, and it stands on its own.

Development tooling (the sandbox, the CLI, ``telemetry decode``) lives in ``lambda_wrapper_dev``; the
benchmark and fault harnesses, the tests and the layer build live outside ``src/``. Nothing shipped may
import any of them: on Lambda they are not there.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layer-build"))

from layerbuild.architectures import host_architecture  # noqa: E402
from layerbuild.inputs import LayerInputs  # noqa: E402
from layerbuild.pins import PINS  # noqa: E402
from layerbuild.progress import SILENT  # noqa: E402
from layerbuild.wheels import fetch_wheels  # noqa: E402

RUNTIME_PACKAGE = REPO / "src" / "lambda_wrapper"
DEVELOPMENT_PACKAGE = REPO / "src" / "lambda_wrapper_dev"
# Package markers both packages have; every other name in the development package is a development module.
PACKAGE_MARKERS = {"__init__.py", "py.typed", "__pycache__"}
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def development_top_levels() -> set[str]:
    """Top-level names only this repository's development side provides."""
    names = {"lambda_wrapper_dev", "bench", "faults", "tests", "layerbuild"}
    # pytest puts tests/ on sys.path, so its helper modules (function_runs, fixtures, ...) import bare.
    for entry in (REPO / "tests").iterdir():
        if entry.suffix == ".py" or (entry / "__init__.py").is_file():
            names.add(entry.stem)
    return names


def runtime_sources() -> list[Path]:
    return sorted(path for path in RUNTIME_PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def boundary_violations(package_dir: Path, forbidden: set[str]) -> list[str]:
    """Imports in ``package_dir``'s modules that reach a forbidden top-level name or climb out of it."""
    found: list[tuple[str, int, str]] = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent)
        package_parts = relative.parent.parts  # ("lambda_wrapper", "export") for lambda_wrapper/export/x.py
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > len(package_parts):
                climbs_out = f"relative import climbs out of {package_parts[0]}"
                found.append((str(relative), node.lineno, climbs_out))
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in IMPORT_FUNCTIONS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                targets = [node.args[0].value]
            found.extend(
                (str(relative), getattr(node, "lineno", 0), f"imports {target}")
                for target in targets
                if target.split(".")[0] in forbidden
            )
    return [f"{where}:{line}: {what}" for where, line, what in sorted(found)]


def test_no_runtime_module_imports_development_code() -> None:
    sources = runtime_sources()
    assert len(sources) > 30, "the runtime package was not found where the scan looks"
    assert boundary_violations(RUNTIME_PACKAGE, development_top_levels()) == []


def test_the_scan_sees_each_kind_of_boundary_crossing(tmp_path: Path) -> None:
    package = tmp_path / "lambda_wrapper"
    (package / "inner").mkdir(parents=True)
    (package / "inner" / "module.py").write_text(
        "import json\n"
        "from . import sibling\n"
        "from .. import settings\n"
        "from ... import outside\n"
        "import lambda_wrapper_dev.sandbox\n"
        "from layerbuild.api import build\n"
        "def later():\n"
        "    import importlib\n"
        "    importlib.import_module('bench.run')\n"
        "    from function_runs import run\n"
    )
    assert boundary_violations(package, development_top_levels()) == [
        "lambda_wrapper/inner/module.py:4: relative import climbs out of lambda_wrapper",
        "lambda_wrapper/inner/module.py:5: imports lambda_wrapper_dev.sandbox",
        "lambda_wrapper/inner/module.py:6: imports layerbuild.api",
        "lambda_wrapper/inner/module.py:9: imports bench.run",
        "lambda_wrapper/inner/module.py:10: imports function_runs",
    ]


# Runs in a child whose sys.path is the standard library and the layer's python/ only (-I -S: no
# site-packages, no editable install, no current directory). Imports every module of the package;
# a module outside any package (the path hook, which Python's start-up runs as ``sitecustomize``) is
# executed from its file. The supervisor's entry module, whose import starts the wrapper, goes last.
IMPORT_EVERY_MODULE = r"""
import importlib, importlib.util, json, sys
from pathlib import Path

site_dir = Path(sys.argv[1])
sys.path.append(str(site_dir))
entry = "lambda_wrapper.supervisor.entry"
modules, failures = {}, {}
for path in sorted((site_dir / "lambda_wrapper").rglob("*.py")):
    relative = path.relative_to(site_dir).with_suffix("")
    in_package = all((site_dir / Path(*relative.parts[:depth]) / "__init__.py").is_file()
                     for depth in range(1, len(relative.parts)))
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    modules[".".join(parts)] = None if in_package else path
for name in sorted(modules, key=lambda name: name == entry):
    try:
        if modules[name] is None:
            importlib.import_module(name)
        else:
            spec = importlib.util.spec_from_file_location(name.rpartition(".")[2], modules[name])
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
    except BaseException as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"
outside_layer = [module.__name__ for module in list(sys.modules.values())
                 if module.__name__.startswith("lambda_wrapper")
                 and not str(getattr(module, "__file__", site_dir)).startswith(str(site_dir))]
print(json.dumps({
    "names": sorted(modules),
    "failures": failures,
    "outside_layer": sorted(outside_layer),
    "development_importable": importlib.util.find_spec("lambda_wrapper_dev") is not None,
}))
"""


def test_every_runtime_module_imports_from_the_layer_alone(layer_dir: Path, tmp_path: Path) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        # What the wrapper stores for the entry module: any importable handler serves.
        "LAMBDA_WRAPPER_HANDLER": "json.dumps",
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_EVERY_MODULE, str(layer_dir / "python")],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    expected = {
        ".".join(path.relative_to(RUNTIME_PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in runtime_sources()
    }
    assert set(report["names"]) == expected
    assert {"lambda_wrapper.supervisor.entry", "lambda_wrapper.doctor"} <= expected
    assert report["failures"] == {}
    assert report["outside_layer"] == []
    assert report["development_importable"] is False


def test_the_layer_holds_the_runtime_package_and_the_pinned_distributions_only(layer_dir: Path) -> None:
    site_dir = layer_dir / "python"
    inputs = LayerInputs.from_repo()
    wheels = fetch_wheels(host_architecture(), PINS, inputs.wheel_cache, SILENT)
    third_party: set[str] = set()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            third_party.update(member.split("/")[0] for member in archive.namelist())
    top_level = {entry.name for entry in site_dir.iterdir()} - {"__pycache__"}
    assert top_level == {"lambda_wrapper"} | third_party
    third_party_modules = {name.removesuffix(".py") for name in third_party}
    top_level_bytecode = {cached.name.split(".")[0] for cached in (site_dir / "__pycache__").iterdir()}
    assert top_level_bytecode <= third_party_modules

    shipped = site_dir / "lambda_wrapper"
    shipped_files = {
        path.relative_to(shipped).as_posix()
        for path in shipped.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    source_files = {
        path.relative_to(RUNTIME_PACKAGE).as_posix()
        for path in RUNTIME_PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
    }
    assert shipped_files == source_files
    development_modules = {entry.name for entry in DEVELOPMENT_PACKAGE.iterdir()} - PACKAGE_MARKERS
    assert development_modules >= {"sandbox", "cli.py"}
    assert sorted(name for name in development_modules if (shipped / name).exists()) == []
    for cache in shipped.rglob("__pycache__"):
        modules = {path.stem for path in cache.parent.glob("*.py")}
        assert {cached.name.split(".")[0] for cached in cache.iterdir()} <= modules, cache

