"""Where the wrapper's cold start goes: instruction counts of its Init, module by module.

Wall time on a shared machine varies by more than the parts being compared, so this
script counts instructions with ``valgrind --tool=callgrind`` (repeatable to a fraction
of a percent) in the runtime image's interpreter, against the layer built from the
working tree by the project's own layer build (its shipped bytecode):

1. The whole Init, bare (awslambdaric loaded, then the function imported) against the
   default path (the entry module imported instead: settings, the internal extension's
   register and subscribe against a stub Runtime/Extensions API, its threads, the
   function's import). The difference is what the wrapper adds. The probe ends with
   ``os._exit``: Lambda never finalizes the interpreter after Init, so the module
   teardown and last collection of an orderly exit are not counted. The same
   difference is also split by kind of work (``--toggle-collect`` on the interpreter's
   C function for it): unmarshalling bytecode, garbage collection, everything else.
2. Each of our modules on the default path alone: its dependencies imported first, then
   the module, less the dependencies alone. Split into load (find the module and
   unmarshal its .pyc) and body (execute it). An empty module gives the fixed cost any
   module pays.
3. The rest of the difference: the other modules our path imports, and
   ``start()`` itself (the entry module's body).
4. The whole Init with every feature on (``bench.variants.EVERY_FEATURE_LOCAL_ENV``: both
   local exporters, structlog logs, process metrics, both watchdogs) against a bare Init that
   also imports the libraries those features import (``EVERY_FEATURE_LIBRARIES``): the
   difference is what our own code costs there, the libraries the user asked for aside.

A few sandbox cold starts add wall-clock figures: the ``lambda_wrapper.init`` record's
extensionInitMs and handlerImportMs (from the EMF exporter's output) and the platform's
Init duration.

    .venv/bin/python -m bench.measure_cold_path --update-doc

The section goes into docs/benchmarks.md between its own markers, with the data it was
rendered from (tests/test_cold_path_doc.py checks it is exactly that rendering).
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.variants import EVERY_FEATURE_LIBRARIES, EVERY_FEATURE_LOCAL_ENV

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Where the cold start goes"
BEGIN = "<!-- cold-path:begin -->"
END = "<!-- cold-path:end -->"
ENTRY = "lambda_wrapper.supervisor.entry"
EMPTY_MODULE = "lambda_wrapper._measure_empty"
FUNCTION_MODULE = "app"
FUNCTION = "def handler(event, context):\n    return {}\n"
# Kinds of work the interpreter does in an Init, by the C function all of it runs inside.
KINDS_OF_WORK = {
    "unmarshalling bytecode (`marshal.loads` of every imported module's .pyc)": "marshal_loads",
    "garbage collection (the collections its allocations trigger)": "gc_collect_main",
}

# Runs in the runtime image's interpreter. Every mode first loads what awslambdaric has
# loaded before it imports the handler, so that nothing of it is counted as ours.
PROBE = r'''
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import time

import awslambdaric.bootstrap  # noqa: F401

mode = sys.argv[1]
if mode == "bare":
    import app  # noqa: F401
    for name in sys.argv[2:]:
        importlib.import_module(name)
    time.sleep(1.0)
elif mode == "wrapped":
    import lambda_wrapper.supervisor.entry  # noqa: F401
    time.sleep(1.0)  # the extension's threads reach /event/next
elif mode == "modules":
    before = set(sys.modules)
    import lambda_wrapper.supervisor.entry  # noqa: F401,F811
    time.sleep(0.5)
    print(json.dumps([name for name in sys.modules if name not in before]))
elif mode == "deps":
    before = set(sys.modules)
    importlib.import_module(sys.argv[2])
    print(json.dumps([name for name in sys.modules if name not in before and name != sys.argv[2]]))
elif mode == "import":
    for name in filter(None, sys.argv[2].split(",")):
        importlib.import_module(name)
    targets = sys.argv[3:]
    if any(name in sys.modules for name in targets):
        sys.exit("a dependency imports " + " ".join(targets))
    for name in targets:
        importlib.import_module(name)
elif mode == "load":
    for name in filter(None, sys.argv[2].split(",")):
        importlib.import_module(name)
    # A package's submodule is found in the package's directory without running the package.
    locations = {}
    for name in sys.argv[3:]:
        parent = name.rpartition(".")[0]
        if parent in locations:
            spec = importlib.machinery.PathFinder.find_spec(name, locations[parent])
        else:
            spec = importlib.util.find_spec(name)
        spec.loader.get_code(name)
        if spec.submodule_search_locations is not None:
            locations[name] = spec.submodule_search_locations
# Lambda never finalizes the interpreter after Init (the process is frozen, later killed):
# finalization's module teardown and last garbage collection are no part of a cold start.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
'''


class StubApi(http.server.BaseHTTPRequestHandler):
    """The Runtime and Extensions API as far as Init needs it: register and subscribe
    answer, ``/event/next`` and ``/runtime/invocation/next`` never do (until shutdown)."""

    protocol_version = "HTTP/1.1"
    stopping = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, body: bytes, headers: dict[str, str]) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = json.dumps({"functionName": "f", "functionVersion": "$LATEST",
                           "handler": f"{FUNCTION_MODULE}.handler"})
        self._answer(body.encode(), {"Lambda-Extension-Identifier": "id-1"})

    def do_PUT(self) -> None:
        self._answer(b"OK", {})

    def do_GET(self) -> None:
        self.stopping.wait()


class Runner:
    """Runs the probe in the runtime image's interpreter with the layer on its path."""

    def __init__(self, work: Path, layer: Path, port: int) -> None:
        from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

        self.image = ensure_runtime_image()
        self.work = work
        self.probe = work / "probe.py"
        self.probe.write_text(PROBE)
        task = work / "task"
        task.mkdir()
        (task / f"{FUNCTION_MODULE}.py").write_text(FUNCTION)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "LAMBDA_TASK_ROOT": str(task),
            "_HANDLER": f"{ENTRY}.handler",
            "LAMBDA_WRAPPER_HANDLER": f"{FUNCTION_MODULE}.handler",
            "LAMBDA_WRAPPER_ROOT": str(layer),
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{self.image.python_version}",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
            "AWS_LAMBDA_LOG_STREAM_NAME": "s",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": f"{self.image.runtime_dir}:{layer / 'python'}:{task}",
        }
        self.counts: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...], str], int] = {}

    def run(self, args: list[str], prefix: tuple[str, ...] = (), env: dict[str, str] | None = None) -> str:
        tmp = self.work / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        argv = [*prefix, str(self.image.interpreter), str(self.probe), *args]
        environ = {**self.env, **(env or {}), "TMPDIR": str(tmp)}
        result = subprocess.run(argv, env=environ, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout + result.stderr

    def listing(self, *args: str, env: dict[str, str] | None = None) -> list[str]:
        names: list[str] = json.loads(self.run(list(args), env=env).splitlines()[-1])
        return names

    def instructions(self, *args: str, env: dict[str, str] | None = None, inside: str = "") -> int:
        """Instructions the probe executes with ``args`` and ``env`` (counted once per pair);
        with ``inside`` (an interpreter C function), only those executed within its calls."""
        key = (args, tuple(sorted((env or {}).items())), inside)
        if key not in self.counts:
            prefix: tuple[str, ...] = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
            if inside:
                prefix += (f"--toggle-collect={inside}",)
            output = self.run(list(args), prefix, env)
            found = re.search(r"Collected : (\d+)", output)
            if found is None:
                raise RuntimeError(f"no instruction count from callgrind: {output[-2000:]}")
            self.counts[key] = int(found.group(1))
        return self.counts[key]


def copy_layer_with_empty_module(layer: Path, target: Path, interpreter: Path) -> Path:
    """The layer, plus an empty module compiled the way the layer build compiles (a hash-based
    .pyc that is never checked against its source)."""
    shutil.copytree(layer, target, symlinks=True)
    package = target / "python" / "lambda_wrapper"
    source = package / (EMPTY_MODULE.rsplit(".", 1)[1] + ".py")
    source.write_text("")
    compile_empty = ("import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True, "
                     "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)")
    subprocess.run([str(interpreter), "-X", "no_debug_ranges", "-c", compile_empty, str(source)], check=True)
    return target


def module_costs(runner: Runner, modules: list[str]) -> dict[str, dict[str, Any]]:
    """Each module's own import, its dependencies already imported: load, body and both.

    A package that imports its own submodules is measured with them (a submodule cannot be
    imported without its package): its row names them under ``with``.
    """
    rows: dict[str, dict[str, Any]] = {}
    dependencies_of = {name: runner.listing("deps", name) for name in modules}
    own_submodules = {name: [dep for dep in dependencies if dep.startswith(name + ".")]
                      for name, dependencies in dependencies_of.items()}
    measured_with_package = {submodule for submodules in own_submodules.values() for submodule in submodules}
    for name in modules:
        if name in measured_with_package:
            continue
        submodules = own_submodules[name]
        dependencies = [dep for dep in dependencies_of[name] if dep not in submodules]
        imported_first = ",".join(dependencies)
        base = runner.instructions("import", imported_first)
        own = runner.instructions("import", imported_first, name, *submodules) - base
        load = runner.instructions("load", imported_first, name, *submodules) - base
        rows[name] = {"self": own, "load": load, "body": own - load}
        if submodules:
            rows[name]["with"] = submodules
        print(f"{name}: {rows[name]}", file=sys.stderr)
    return rows


def module_count(modules: dict[str, dict[str, Any]]) -> int:
    return sum(1 + len(row.get("with", ())) for row in modules.values())


def sandbox_init_records(layer: Path, starts: int) -> list[dict[str, float]]:
    """The wall-clock Init figures of ``starts`` cold starts in the sandbox, defaults."""
    from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

    samples = []
    with tempfile.TemporaryDirectory(prefix="cold-path-task-") as task:
        Path(task, f"{FUNCTION_MODULE}.py").write_text(FUNCTION)
        for _ in range(starts):
            spec = FunctionSpec(task_root=Path(task), layer_dir=layer, memory_mb=128, timeout_s=10)
            with Sandbox(spec) as sandbox:
                result = sandbox.invoke(b"{}")
                assert result.status_code == 200, result.body
            init = next(e for e in sandbox.telemetry_events if e["type"] == "platform.initReport")
            emf = [json.loads(line) for line in sandbox.function_output
                   if line.startswith("{") and '"ExtensionInit"' in line]
            if not emf:
                raise RuntimeError("no EMF document with ExtensionInit in the function's output")
            samples.append({"initMs": init["record"]["metrics"]["durationMs"],
                            "extensionInitMs": emf[0]["ExtensionInit"],
                            "handlerImportMs": emf[0]["HandlerImport"]})
    return samples


def measure(sandbox_starts: int) -> dict[str, Any]:
    from bench.layers import build_own_layer
    from bench.machine import machine_info
    from lambda_wrapper_dev.provenance import MEASURED_CODE, describe

    built = build_own_layer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="measure-cold-path-"))
    try:
        runner = Runner(work, work / "layer", server.server_address[1])
        copy_layer_with_empty_module(built.path, work / "layer", runner.image.interpreter)
        bare, wrapped = runner.instructions("bare"), runner.instructions("wrapped")
        kinds = {kind: {mode: runner.instructions(mode, inside=function) for mode in ("bare", "wrapped")}
                 for kind, function in KINDS_OF_WORK.items()}
        loaded = [name for name in runner.listing("modules") if name != ENTRY]
        ours = [name for name in loaded if name.split(".")[0] == "lambda_wrapper"]
        # The function's own module is imported on both paths: not the wrapper's.
        others = [name for name in loaded if name not in ours and name != FUNCTION_MODULE]
        modules = module_costs(runner, ours)
        empty = module_costs(runner, [EMPTY_MODULE])[EMPTY_MODULE]
        # The other modules as one import (they import each other), with what awslambdaric loaded.
        other_modules = runner.instructions("import", "", *others) - runner.instructions("import", "")
        every_feature = {
            "env": EVERY_FEATURE_LOCAL_ENV,
            "libraries": list(EVERY_FEATURE_LIBRARIES),
            "bareWithLibraries": runner.instructions("bare", *EVERY_FEATURE_LIBRARIES),
            "wrapped": runner.instructions("wrapped", env=EVERY_FEATURE_LOCAL_ENV),
            "ours": [name for name in runner.listing("modules", env=EVERY_FEATURE_LOCAL_ENV)
                     if name.split(".")[0] == "lambda_wrapper" and name != ENTRY],
        }
        timings = sandbox_init_records(built.path, sandbox_starts) if sandbox_starts else []
    finally:
        StubApi.stopping.set()
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    machine = machine_info()
    return {
        "setting": {
            "commit": describe((*MEASURED_CODE, "bench/measure_cold_path.py")),
            "date": datetime.date.today().isoformat(),
            "machine": f"{machine['cpu_model']}, {machine['nproc']} CPUs",
            "python": runner.image.python_version,
        },
        "init": {"bare": bare, "wrapped": wrapped},
        "kindsOfWork": kinds,
        "modules": modules,
        "emptyModule": empty,
        "otherModules": {"count": len(others), "instructions": other_modules},
        "everyFeature": every_feature,
        "sandbox": {
            "starts": len(timings),
            "medians": {key: statistics.median(sample[key] for sample in timings)
                        for key in (timings[0] if timings else {})},
        },
    }


def thousands(count: float) -> str:
    return f"{count / 1000:,.0f}"


def millions(count: float) -> str:
    return f"{count / 1e6:.1f}M"


def render(data: dict[str, Any]) -> str:
    where, init, modules = data["setting"], data["init"], data["modules"]
    empty, others = data["emptyModule"], data["otherModules"]
    added = init["wrapped"] - init["bare"]
    imports = sum(row["self"] for row in modules.values())
    rest = added - imports - others["instructions"]
    count = module_count(modules)
    fixed = empty["self"] * count
    lines = [
        f"Measured {where['date']} on commit `{where['commit']}`, {where['machine']}, "
        f"Python {where['python']}, by `bench/measure_cold_path.py`: instructions counted by "
        "`valgrind --tool=callgrind` in the runtime image's interpreter, against the layer built from "
        "that commit with its shipped bytecode, the Runtime and Extensions API stubbed (counts repeat "
        "where wall time on this shared machine does not).",
        "",
        "| Init, instructions | |",
        "| --- | ---: |",
        f"| bare (awslambdaric loaded, then the function imported) | {millions(init['bare'])} |",
        f"| lambda-wrapper, defaults | {millions(init['wrapped'])} |",
        f"| **added by the wrapper** | **{millions(added)}** ({100 * added / init['bare']:+.1f} %) |",
        f"| of which: our {count} modules' imports | {millions(imports)} |",
        f"| of which: {others['count']} other modules they import (standard library, third party) | "
        f"{millions(others['instructions'])} |",
        f"| of which: the rest, the entry module and its `start()` (settings, register, subscribe, "
        f"threads) | {millions(rest)} |",
        *render_kinds_of_work(data),
        "",
        f"Every module pays a fixed cost just to exist: an empty module costs {thousands(empty['self'])}k "
        f"instructions (load {thousands(empty['load'])}k, body {thousands(empty['body'])}k), so the "
        f"{count} modules on the default path pay {millions(fixed)} of their {millions(imports)} "
        "before any of their own code runs.",
        "",
        "Each module's own import, its dependencies imported first, in thousands of instructions "
        "(load: find the module and unmarshal its .pyc; body: execute it):",
        "",
        "| module | self | load | body |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in sorted(modules.items(), key=lambda item: (-item[1]["self"], item[0])):
        cells = " | ".join(thousands(row[key]) for key in ("self", "load", "body"))
        imported_with = "".join(f" with `{submodule}`" for submodule in row.get("with", ()))
        lines.append(f"| `{name}`{imported_with} | {cells} |")
    lines += render_every_feature(data)
    sandbox = data["sandbox"]
    if sandbox["starts"]:
        medians = sandbox["medians"]
        lines += [
            "",
            f"Wall clock, from the `lambda_wrapper.init` record of {sandbox['starts']} sandbox cold starts "
            f"(defaults, medians): our part of Init (extensionInitMs) {medians['extensionInitMs']:.1f} ms, "
            f"the function's import (handlerImportMs) {medians['handlerImportMs']:.1f} ms, of a platform "
            f"Init of {medians['initMs']:.1f} ms.",
        ]
    return "\n".join(lines) + "\n"


def render_kinds_of_work(data: dict[str, Any]) -> list[str]:
    """The same difference split by what the interpreter does, whatever the module."""
    kinds = {kind: counts for kind, counts in data.get("kindsOfWork", {}).items() if counts["bare"]}
    if not kinds:
        return []
    init = data["init"]
    added = init["wrapped"] - init["bare"]
    lines = ["", "The same Init, by kind of work (bare, defaults, added):", "",
             "| kind of work | bare | defaults | added |", "| --- | ---: | ---: | ---: |"]
    accounted = 0
    for kind, counts in kinds.items():
        difference = counts["wrapped"] - counts["bare"]
        accounted += difference
        lines.append(f"| {kind} | {millions(counts['bare'])} | {millions(counts['wrapped'])} | "
                     f"{millions(difference)} |")
    other_bare = init["bare"] - sum(counts["bare"] for counts in kinds.values())
    other_wrapped = init["wrapped"] - sum(counts["wrapped"] for counts in kinds.values())
    lines.append(f"| everything else (running module bodies: making functions and classes; the import "
                 f"system's own code; `start()`) | {millions(other_bare)} | {millions(other_wrapped)} | "
                 f"{millions(added - accounted)} |")
    return lines


def render_every_feature(data: dict[str, Any]) -> list[str]:
    every = data.get("everyFeature")
    if every is None:
        return []
    base = every["bareWithLibraries"]
    added = every["wrapped"] - base
    switches = ", ".join(f"`{name}={value}`" for name, value in sorted(every["env"].items()))
    libraries = " and ".join(every["libraries"])
    rows = data["modules"]
    default_path = {name for package, row in rows.items() for name in (package, *row.get("with", ()))}
    extra = [name for name in every["ours"] if name not in default_path]
    return [
        "",
        f"With every feature on ({switches}), against a bare Init that also imports {libraries}, "
        "so that the libraries the user asked for are not counted as ours:",
        "",
        "| Init, instructions | |",
        "| --- | ---: |",
        f"| bare, also importing {libraries} | {millions(base)} |",
        f"| lambda-wrapper, every feature on | {millions(every['wrapped'])} |",
        f"| **added by our code** | **{millions(added)}** ({100 * added / base:+.1f} %) |",
        "",
        f"Our modules on that path: {len(every['ours'])}, the default path's and "
        + (", ".join(f"`{name}`" for name in extra) or "no other") + ".",
    ]


SECTION = DocSection("cold-path", HEADING, lambda data: render(data))
block = SECTION.block
read_block = SECTION.read
write_block = SECTION.write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sandbox-starts", type=int, default=5,
                        help="sandbox cold starts for the wall-clock figures (0: none)")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: this benchmark counts instructions with callgrind "
              "(apt-get install valgrind)", file=sys.stderr)
        return 2
    data = measure(args.sandbox_starts)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    raw = results / f"cold-path-{datetime.datetime.now():%Y%m%dT%H%M%S}.json"
    raw.write_text(json.dumps(data, indent=1, sort_keys=True))
    print(f"raw results: {raw}", file=sys.stderr)
    SECTION.publish(DOC, data, args.update_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
