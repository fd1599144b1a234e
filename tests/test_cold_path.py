"""The cold path stays light: with every feature off, nothing heavy is imported.

"With the defaults neither structlog, psutil, http.client, http.server, typing nor
dataclasses is imported": checked in a real function run, on every Lambda Python found
here, and with ``python -X importtime`` on the supervisor's entry module, where each
feature must import only what it needs.

In the function the rule is "nothing of ours adds it": the same function runs bare and
wrapped on the same Python, and the modules only the wrapped run loaded (at the
function's import and after an invocation) must contain none of them. Measured on
CPython 3.10-3.13 with awslambdaric 4.2.2, the bare runtime loads none of them either,
so there the difference is the whole promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.variants import EVERY_FEATURE_LIBRARIES, EVERY_FEATURE_LOCAL_ENV

from function_runs import write_sources
from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

REPO_ROOT = Path(__file__).resolve().parents[1]
# Our modules a function's Init imports with the defaults, exactly: each costs a fixed
# ~0.15 ms just to exist (docs/benchmarks.md), so a new one on this path is a decision,
# taken here, not an accident.
DEFAULT_PATH = frozenset({
    "lambda_wrapper",
    "lambda_wrapper.aws",
    "lambda_wrapper.settings",
    "lambda_wrapper.telemetry",
    "lambda_wrapper.instruments",
    "lambda_wrapper.export",
    "lambda_wrapper.export.emf",
    "lambda_wrapper.extension",
    "lambda_wrapper.supervisor",
    "lambda_wrapper.supervisor.entry",
})
# The other modules the default path may add to what the bare runtime loads: the C
# modules the listener polls with (their Python wrappers cost milliseconds) and the one
# the wrapper script's PYTHONFAULTHANDLER tweak switches on (docs/tweaks.md).
OTHERS_ON_DEFAULT_PATH = frozenset({"_socket", "select", "faulthandler"})
# Loaded wherever a variable of ours is set: the variables' declarations and parsers.
SETTINGS_READ = "lambda_wrapper.variables"
# Every feature on, all exporters local (bench.variants: the configuration the Init budget
# for "everything on" is about): what it adds to the default path, beside structlog.
EVERY_FEATURE_ADDS = frozenset({
    SETTINGS_READ,
    "lambda_wrapper.log_lines",  # the file exporter reads log lines
    "lambda_wrapper.export.file", "lambda_wrapper.instruments.logs", "lambda_wrapper.instruments.process",
    "lambda_wrapper.instruments.watchdog",
})
# Modules of paths the default lifecycle never takes, each imported where its path is:
# input the platform never sends, a failed delivery or a refused batch, a dead process's
# leftovers or an overflowing spool.
RARE_PATHS = ("lambda_wrapper.malformed", "lambda_wrapper.export.failures", "lambda_wrapper.export.readback")
# The decoding of log lines: loaded by a pipeline with an exporter that reads them, which
# the default's (EMF) does not.
LOG_LINES = "lambda_wrapper.log_lines"
HEAVY = (
    "structlog", "psutil", "http.server", "http.client", "dataclasses", "asyncio", "urllib.request", "typing"
)
MODULES_SEEN = {
    "app.py": """
        import sys

        AT_INIT = sorted(sys.modules)

        def handler(event, context):
            return {"init": AT_INIT, "invoke": sorted(sys.modules)}
    """
}


def imported(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def our_modules(modules: list[str]) -> set[str]:
    return set(imported(modules, ("lambda_wrapper",)))


# Printed between awslambdaric's import and the entry module's, which awslambdaric imports
# on Lambda: what comes after it is ours.
ENTRY_IMPORT_STARTS = "-- the entry module's import starts --"


def importtime(env: dict[str, str], tmp_path: Path) -> dict[str, int]:
    """Modules imported by the supervisor's entry module, awslambdaric already loaded as on
    Lambda, with their cumulative µs."""
    task = write_sources(tmp_path / "task", {"app.py": "def handler(event, context):\n    return 1\n"})
    environ = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{REPO_ROOT / 'src'}:{task}",
        "LAMBDA_WRAPPER_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         f"import awslambdaric.bootstrap, sys; print({ENTRY_IMPORT_STARTS!r}, file=sys.stderr); "
         "import lambda_wrapper.supervisor.entry"],
        env=environ,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    modules = {}
    for line in result.stderr.partition(ENTRY_IMPORT_STARTS)[2].splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            modules[name.strip()] = int(cumulative)
    return modules


def modules_seen(
    layer_dir: Path, work_dir: Path, python_version: str, *, use_wrapper: bool,
    env: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """``sys.modules`` of a real function at its import ("init") and in its first invocation."""
    task_root = write_sources(work_dir / "task", MODULES_SEEN)
    tmp_dir = work_dir / "tmp"
    tmp_dir.mkdir()
    spec = FunctionSpec(
        task_root=task_root,
        layer_dir=layer_dir,
        use_wrapper=use_wrapper,
        python_version=python_version,
        tmp_dir=tmp_dir,
        env=env or {},
    )
    with Sandbox(spec) as sandbox:
        result = sandbox.invoke(b"{}")
    assert result.status == "success", "\n".join(sandbox.function_output)
    seen: dict[str, list[str]] = result.json()
    return seen


def test_default_function_imports_nothing_heavy(layer_dir: Path, tmp_path: Path, runtime_python: str) -> None:
    bare = modules_seen(layer_dir, tmp_path / "bare", runtime_python, use_wrapper=False)
    wrapped = modules_seen(layer_dir, tmp_path / "wrapped", runtime_python, use_wrapper=True)
    assert "lambda_wrapper.supervisor.entry" in wrapped["init"]  # the wrapper did run
    assert "lambda_wrapper.extension" in wrapped["init"]  # with the extension on
    assert our_modules(wrapped["init"]) == DEFAULT_PATH
    assert our_modules(wrapped["invoke"]) == DEFAULT_PATH
    for moment in ("init", "invoke"):
        others = set(wrapped[moment]) - set(bare[moment]) - DEFAULT_PATH
        assert others <= OTHERS_ON_DEFAULT_PATH, moment
    assert not imported(bare["invoke"], ("lambda_wrapper",))
    for moment in ("init", "invoke"):
        ours = sorted(set(wrapped[moment]) - set(bare[moment]))
        assert imported(ours, HEAVY) == [], f"the wrapper added these by {moment}"
    assert (
        imported(wrapped["invoke"], ("lambda_wrapper.instruments.logs", "lambda_wrapper.instruments.process"))
        == []
    )


def test_every_feature_adds_only_its_own_modules(
    layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    seen = modules_seen(layer_dir, tmp_path, runtime_python, use_wrapper=True, env=EVERY_FEATURE_LOCAL_ENV)
    # The watchdog starts once the function is imported: its module is there by the invocation.
    assert our_modules(seen["invoke"]) == DEFAULT_PATH | EVERY_FEATURE_ADDS
    started_later = {"lambda_wrapper.instruments.watchdog"}
    assert our_modules(seen["init"]) == DEFAULT_PATH | EVERY_FEATURE_ADDS - started_later
    assert {name.split(".")[0] for name in imported(seen["init"], EVERY_FEATURE_LIBRARIES)} == set(
        EVERY_FEATURE_LIBRARIES
    )
    assert imported(seen["init"], ("psutil",)) == []  # process metrics read /proc themselves


def test_call_instrumentation_of_unused_libraries_imports_only_its_hook(
    layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    default = modules_seen(layer_dir, tmp_path / "default", runtime_python, use_wrapper=True)
    instrumented = modules_seen(layer_dir, tmp_path / "instrumented", runtime_python, use_wrapper=True,
                                env={"LAMBDA_WRAPPER_INSTRUMENT": "all"})
    for moment in ("init", "invoke"):
        added = sorted(set(instrumented[moment]) - set(default[moment]))
        assert added == ["lambda_wrapper.instruments.calls", SETTINGS_READ], moment


RARE_PATH_PROBE = """
import io, json, os, sys, time
from lambda_wrapper import telemetry
from lambda_wrapper.export import InFlightMarker, Pipeline
from lambda_wrapper.export.emf import EmfExporter

RARE = %r
root = sys.argv[1]
loaded = {}


def seen(step):
    loaded[step] = sorted(name for name in RARE if name in sys.modules)


class Broken(io.StringIO):
    def write(self, text):
        raise OSError("stdout is gone")


report = {"time": "2026-01-01T00:00:00.000Z", "type": "platform.report",
          "record": {"requestId": "r1", "metrics": {"durationMs": 1.0, "billedDurationMs": 1}}}
# The default lifecycle's export side: Init (the spool and in-flight marker of a first
# process, nothing to recover), invocations, a flush, the shutdown's flush and loss count.
marker = InFlightMarker(os.path.join(root, "in-flight"))
marker.recover_orphans()
pipeline = Pipeline([EmfExporter(stream=io.StringIO())], os.path.join(root, "spool"), 1 << 20)
pipeline.recover()
for _ in range(3):
    marker.begin("r1", time.time())
    marker.end()
    pipeline.receive(json.dumps([report]).encode())
    pipeline.flush(1.0)
pipeline.receive(json.dumps([report]).encode())
pipeline.flush(1.0)
pipeline.give_up("shutdown", time.monotonic() + 1.0)
seen("default")
pipeline.receive(json.dumps([report]).encode())
seen("a batch after the loss report")
try:
    telemetry.parse_batch(b"{}")
except ValueError as error:
    seen("unreadable batch")  # before the probe imports the class to check what was raised
    from lambda_wrapper.malformed import UnreadableBatch

    assert isinstance(error, UnreadableBatch), error
failing = Pipeline([EmfExporter(stream=Broken())], os.path.join(root, "failing"), 1 << 20)
failing.receive(json.dumps([report]).encode())
failing.flush(1.0)
seen("failed delivery")
os.makedirs(os.path.join(root, "spool", "emf", "999999999-1"))
Pipeline([EmfExporter(stream=io.StringIO())], os.path.join(root, "spool"), 1 << 20).recover()
seen("dead process's spool")
from lambda_wrapper.export.file import FileExporter

Pipeline([FileExporter(os.path.join(root, "out.jsonl"))], os.path.join(root, "file-spool"), 1 << 20)
seen("an exporter that reads log lines")
print(json.dumps(loaded))
"""


def test_rare_paths_load_their_modules_only_when_taken(tmp_path: Path) -> None:
    """The export side of the default lifecycle, run in a fresh interpreter, imports none of
    the rare paths' modules, nor the decoding of log lines; each comes in with its own path."""
    result = subprocess.run(
        [sys.executable, "-c", RARE_PATH_PROBE % ((*RARE_PATHS, LOG_LINES),), str(tmp_path)],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT / "src")},
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded == {
        "default": [],
        "a batch after the loss report": ["lambda_wrapper.export.failures"],
        "unreadable batch": ["lambda_wrapper.export.failures", "lambda_wrapper.malformed"],
        "failed delivery": ["lambda_wrapper.export.failures", "lambda_wrapper.malformed"],
        "dead process's spool": sorted(RARE_PATHS),
        "an exporter that reads log lines": sorted((*RARE_PATHS, LOG_LINES)),
    }


def test_entry_module_default_path(tmp_path: Path) -> None:
    # No AWS_LAMBDA_RUNTIME_API: the extension says so and stays off, the rest runs.
    modules = importtime({}, tmp_path)
    assert our_modules(list(modules)) == DEFAULT_PATH
    assert imported(list(modules), HEAVY) == []
    assert "typing" not in modules  # ~4 ms: only under TYPE_CHECKING in our modules


@pytest.mark.parametrize(
    ("env", "wanted", "still_absent"),
    [
        ({"LAMBDA_WRAPPER_LOGS": "structlog"}, ("structlog", "lambda_wrapper.instruments.logs"), ("psutil",)),
        # psutil only where /proc cannot be opened.
        ({"LAMBDA_WRAPPER_PROCESS_METRICS": "true"}, ("lambda_wrapper.instruments.process",),
         ("structlog", "psutil")),
        (
            {"LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": "100", "LAMBDA_WRAPPER_MEMORY_WARNING_PCT": "90"},
            ("lambda_wrapper.instruments.watchdog",),
            ("structlog", "psutil"),
        ),
        (
            {"LAMBDA_WRAPPER_IMPORT_PROFILE": "5"},
            ("lambda_wrapper.instruments.import_profile",),
            ("structlog", "psutil"),
        ),
    ],
)
def test_each_feature_imports_only_what_it_needs(
    tmp_path: Path, env: dict[str, str], wanted: tuple[str, ...], still_absent: tuple[str, ...]
) -> None:
    modules = importtime(env, tmp_path)
    default = our_modules(list(importtime({}, tmp_path)))
    added = our_modules(list(modules)) - default
    assert added == {SETTINGS_READ} | {name for name in wanted if name.startswith("lambda_wrapper")}
    for name in wanted:
        assert name in modules
    assert imported(list(modules), still_absent) == []
    assert imported(list(modules), ("http.server", "http.client")) == []
