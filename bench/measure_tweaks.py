"""Measure the wrapper's environment tweaks and write the figures of docs/tweaks.md.

Every figure in docs/tweaks.md comes from one run of this script, written between the
``tweaks-figures`` markers with the commit, date and machine it ran on, and the raw
results as a JSON comment from which the section is rendered (tests/test_tweaks_doc.py
checks the section is exactly that rendering, so a hand edit shows).

Two kinds of measurement:

- In the sandbox: each trial starts a fresh sandbox (read-only /var/task and /opt,
  like Lambda), runs a function through the wrapper that imports boto3 from source
  without .pyc files (a zip deployed without bytecode) and creates an S3 client,
  invokes it three times, and records the platform's init duration, the function's
  own import time (wall and CPU), and the process RSS and peak RSS after the third
  invoke, each of which runs four threads that allocate and free malloc-sized
  buffers. Variants (all tweaks off, then each one alone) are interleaved so that
  machine noise spreads over all of them.
- Directly, one effect at a time, with the same interpreter and boto3 sources on a
  read-only bind mount (``unshare -m``, so it needs root): the wrapper script's time
  with and without its tweaks block, interpreter start-up with and without
  faulthandler, the bytecode serialisation the read-only code dirs throw away, RSS of
  the threaded buffer workload with and without ``MALLOC_ARENA_MAX=2``, and RSS and
  import CPU with and without ``PYTHONNODEBUGRANGES``.

    .venv/bin/python -m bench.measure_tweaks --trials 3 --update-doc
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "tweaks.md"
WRAPPER = REPO / "wrapper" / "lambda-wrapper"
FIGURES_BEGIN = "<!-- tweaks-figures:begin -->"
FIGURES_END = "<!-- tweaks-figures:end -->"
DATA_PREFIX = "<!-- tweaks-figures:data "
BLOCK_BEGIN = "# --- environment tweaks"
BLOCK_END = "# --- end of environment tweaks"
TWEAKS = ("FAULTHANDLER", "DONT_WRITE_BYTECODE", "MALLOC_ARENA_MAX", "NO_DEBUG_RANGES")
SANDBOX_VARIANTS = ("all off", *(tweak.lower() for tweak in TWEAKS))
PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")

# Threads allocating and freeing malloc-sized buffers (pymalloc serves only objects up
# to 512 bytes): where glibc's per-thread arenas show in RSS.
BUFFER_WORKLOAD = """
import random
import threading

def _work(seed):
    rng = random.Random(seed)
    kept = []
    for _ in range(4000):
        kept.append(bytes(rng.randrange(1024, 64 * 1024)))
        if len(kept) > 200:
            del kept[rng.randrange(len(kept))]

def buffer_workload():
    threads = [threading.Thread(target=_work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

def memory_kb():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])
"""

IMPORT_BOTO3 = """
import resource
import time
_t, _cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
import boto3
CLIENT = boto3.client("s3", region_name="us-east-1")
IMPORT_MS = (time.perf_counter() - _t) * 1000
_end = resource.getrusage(resource.RUSAGE_SELF)
IMPORT_CPU_MS = (_end.ru_utime + _end.ru_stime - _cpu.ru_utime - _cpu.ru_stime) * 1000
"""

FUNCTION = IMPORT_BOTO3 + BUFFER_WORKLOAD + """
def handler(event, context):
    buffer_workload()
    rss_kb, hwm_kb = memory_kb()
    return {"importMs": IMPORT_MS, "importCpuMs": IMPORT_CPU_MS, "rssKB": rss_kb, "hwmKB": hwm_kb}
"""

# Times what CPython does to store bytecode after compiling a module from source:
# serialise the code object, then try to write it (EROFS on the read-only mount).
SERIALISATION_PROBE = """
import importlib._bootstrap_external as external
import json
import time
spent = [0.0, 0]
def timed(original, count):
    def call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += count
    return call
external._code_to_timestamp_pyc = timed(external._code_to_timestamp_pyc, 1)
external.SourceFileLoader._cache_bytecode = timed(external.SourceFileLoader._cache_bytecode, 0)
""" + IMPORT_BOTO3 + """
print(json.dumps({"serialiseMs": spent[0] * 1000, "modules": spent[1], "importMs": IMPORT_MS}))
"""

RSS_AFTER_IMPORT = IMPORT_BOTO3 + BUFFER_WORKLOAD + """
import json
print(json.dumps({"rssKB": memory_kb()[0], "importCpuMs": IMPORT_CPU_MS}))
"""

BUFFERS_ONLY = BUFFER_WORKLOAD + """
import json
for _ in range(3):
    buffer_workload()
rss_kb, hwm_kb = memory_kb()
print(json.dumps({"rssKB": rss_kb, "hwmKB": hwm_kb}))
"""


def build_task_root(target: Path) -> Path:
    site = next((REPO / ".venv" / "lib").glob("python3.*/site-packages"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    (target / "app.py").write_text(FUNCTION)
    return target


def run_trial(task_root: Path, layer: Path, on: str | None) -> dict[str, float]:
    from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

    env = {f"LAMBDA_WRAPPER_TWEAK_{name}": "true" if name == on else "false" for name in TWEAKS}
    env["LAMBDA_WRAPPER_EXPORTERS"] = "file"
    spec = FunctionSpec(task_root=task_root, layer_dir=layer, env=env, memory_mb=512, timeout_s=30)
    with Sandbox(spec) as sandbox:
        for _ in range(3):
            result = sandbox.invoke(b"{}")
            assert result.status_code == 200, result.body
        body = result.json()
        init = next(e for e in sandbox.telemetry_events if e["type"] == "platform.initReport")
    return {
        "initMs": init["record"]["metrics"]["durationMs"],
        "importMs": body["importMs"],
        "importCpuMs": body["importCpuMs"],
        "rssMB": body["rssKB"] / 1024,
        "peakRssMB": body["hwmKB"] / 1024,
    }


# -- direct measurements ----------------------------------------------------------------


def interleaved(runs: int, variants: dict[str, Any], measure: Any) -> dict[str, list[Any]]:
    """``measure(variant)`` ``runs`` times per variant, variants interleaved run by run."""
    samples: dict[str, list[Any]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, variant in variants.items():
            samples[name].append(measure(variant))
    return samples


def wall_ms(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def block_cost(work: Path, runs: int) -> dict[str, Any]:
    """The wrapper script from spawn to its exec, with and without the tweaks block."""
    root = work / "layer"
    (root / "python" / "lambda_wrapper" / "supervisor").mkdir(parents=True)
    (root / "python" / "lambda_wrapper" / "supervisor" / "entry.py").write_text("")
    source = WRAPPER.read_text()
    begin, end = source.index(BLOCK_BEGIN), source.index(BLOCK_END)
    end = source.index("\n", end) + 1
    scripts = {"without": root / "without-block", "with": root / "lambda-wrapper"}
    scripts["with"].write_text(source)
    scripts["without"].write_text(source[:begin] + source[end:])
    env = {"PATH": "/usr/bin:/bin", "_HANDLER": "app.handler"}
    for name, script in scripts.items():
        shown = subprocess.run(["/bin/sh", str(script), "env"], env=env, capture_output=True, text=True)
        # The block ran exactly where it is kept.
        assert ("LAMBDA_WRAPPER_TWEAKS_APPLIED=" in shown.stdout) == (name == "with"), shown.stdout
    samples = interleaved(runs, scripts, lambda script: wall_ms(["/bin/sh", str(script), "true"], env))
    return {name: statistics.median(values) for name, values in samples.items()}


def faulthandler_cost(starts: int) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    variants = {"off": env, "on": {**env, "PYTHONFAULTHANDLER": "1"}}
    samples = interleaved(starts, variants, lambda e: wall_ms([sys.executable, "-s", "-c", "pass"], e))
    return {name: statistics.median(values) for name, values in samples.items()}


def on_read_only_mount(task_root: Path, code: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``code`` with ``task_root`` as its read-only working directory (root only)."""
    shell = (
        'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && cd "$1" && exec "$2" -s -c "$3"'
    )
    argv = ["unshare", "-m", "sh", "-c", shell, "sh", str(task_root), sys.executable, code]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, check=True)
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def bytecode_serialisation(task_root: Path, runs: int) -> dict[str, Any]:
    samples = [on_read_only_mount(task_root, SERIALISATION_PROBE, {}) for _ in range(runs)]
    return {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}


def malloc_arenas(runs: int) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    variants = {"default": env, "arena_max_2": {**env, "MALLOC_ARENA_MAX": "2"}}

    def measure(variant_env: dict[str, str]) -> dict[str, Any]:
        argv = [sys.executable, "-s", "-c", BUFFERS_ONLY]
        result = subprocess.run(argv, env=variant_env, capture_output=True, text=True, check=True)
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    samples = interleaved(runs, variants, measure)
    return {
        name: {"rssMB": statistics.median(s["rssKB"] for s in values) / 1024,
               "peakRssMB": statistics.median(s["hwmKB"] for s in values) / 1024}
        for name, values in samples.items()
    }


def debug_ranges(task_root: Path, runs: int) -> dict[str, Any]:
    variants = {"default": {"PYTHONDONTWRITEBYTECODE": "1"},
                "no_debug_ranges": {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONNODEBUGRANGES": "1"}}
    samples = interleaved(runs, variants, lambda env: on_read_only_mount(task_root, RSS_AFTER_IMPORT, env))
    return {
        name: {"rssMB": statistics.median(s["rssKB"] for s in values) / 1024,
               "importCpuMs": statistics.median(s["importCpuMs"] for s in values)}
        for name, values in samples.items()
    }


# -- where and on what ---------------------------------------------------------------------


def commit_measured() -> dict[str, Any]:
    """The commit the run measured, and whether the code it measures differed from it."""
    from lambda_wrapper_dev.provenance import MEASURED_CODE
    from lambda_wrapper_dev.provenance import commit_measured as measured_state

    return measured_state((*MEASURED_CODE, "bench/measure_tweaks.py"))


def setting() -> dict[str, Any]:
    from bench.machine import machine_info
    from lambda_wrapper_dev.sandbox.runtime_image import AWSLAMBDARIC_VERSION

    machine = machine_info()
    return {
        **commit_measured(),
        "date": datetime.date.today().isoformat(),
        "machine": f"{machine['cpu_model']}, {machine['nproc']} CPUs",
        "python": platform.python_version(),
        "awslambdaric": AWSLAMBDARIC_VERSION,
        "shell": os.path.basename(os.path.realpath("/bin/sh")),
    }


# -- the doc's figures section --------------------------------------------------------------

SANDBOX_COLUMNS = (("initMs", "Init (platform)", "ms", 0), ("importMs", "import, wall", "ms", 0),
                   ("importCpuMs", "import, CPU", "ms", 0), ("rssMB", "RSS after 3rd invoke", "MB", 1),
                   ("peakRssMB", "peak RSS", "MB", 1))


def render_figures(data: dict[str, Any]) -> str:
    """The generated section of docs/tweaks.md, from the results of one run."""
    where = data["setting"]
    counts = data["counts"]
    commit = f"`{where['commit']}`" + (" with uncommitted changes" if where["uncommitted"] else "")
    sandbox = data["sandbox"]
    lines = [
        f"Generated by `bench/measure_tweaks.py` at commit {commit} on {where['date']}: {where['machine']}, "
        f"Python {where['python']}, awslambdaric {where['awslambdaric']}, `/bin/sh` is {where['shell']}. "
        f"Sandbox: medians of {counts['trials']} trials; direct: medians of {counts['starts']} starts "
        f"(script, interpreter) and of {counts['runs']} runs (imports, workloads).",
        "",
        "In the sandbox (boto3 imported from source, four buffer threads per invocation):",
        "",
        "| variant | " + " | ".join(title for _, title, _, _ in SANDBOX_COLUMNS) + " |",
        "| --- |" + " ---: |" * len(SANDBOX_COLUMNS),
    ]
    for variant in SANDBOX_VARIANTS:
        figures = sandbox["medians"][variant]
        cells = [f"{figures[key]:.{digits}f} {unit}" for key, _, unit, digits in SANDBOX_COLUMNS]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    off = sandbox["medians"]["all off"]
    bytecode_on = sandbox["medians"]["dont_write_bytecode"]
    block, fault = data["block"], data["faulthandler"]
    serialise, malloc, ranges = data["bytecode"], data["malloc"], data["debug_ranges"]
    lines += [
        "",
        f"Spread between trials: import CPU varies by ±{sandbox['cpuSpreadMs']:.0f} ms (half the range "
        "between trials, median over the variants).",
        "",
        "Directly:",
        "",
        f"- **Cost of the tweaks block**: the wrapper script from spawn to its exec (`/bin/sh`), "
        f"{block['without']:.2f} ms without the block, {block['with']:.2f} ms with it: "
        f"{block['with'] - block['without']:+.2f} ms.",
        f"- **faulthandler**: interpreter start-up {fault['off']:.2f} ms without `PYTHONFAULTHANDLER=1`, "
        f"{fault['on']:.2f} ms with it ({fault['on'] - fault['off']:+.2f} ms).",
        f"- **PYTHONDONTWRITEBYTECODE**: `import boto3` and `boto3.client(\"s3\")` compile "
        f"{serialise['modules']:.0f} modules from source; serialising their bytecode, which the read-only "
        f"mount then refuses, takes {serialise['serialiseMs']:.1f} ms of a "
        f"{serialise['importMs']:.0f} ms import "
        f"({100 * serialise['serialiseMs'] / serialise['importMs']:.1f} %), all skipped with the tweak. "
        f"In the sandbox: Init {bytecode_on['initMs'] - off['initMs']:+.0f} ms, import CPU "
        f"{bytecode_on['importCpuMs'] - off['importCpuMs']:+.0f} ms against all off.",
        f"- **MALLOC_ARENA_MAX=2**: the four-thread buffer workload three times, RSS after "
        f"{malloc['default']['rssMB']:.1f} MB (default arenas) vs {malloc['arena_max_2']['rssMB']:.1f} MB, "
        f"peak {malloc['default']['peakRssMB']:.1f} MB vs {malloc['arena_max_2']['peakRssMB']:.1f} MB.",
        f"- **PYTHONNODEBUGRANGES**: RSS after `import boto3` and `boto3.client(\"s3\")` "
        f"{ranges['default']['rssMB']:.2f} MB vs {ranges['no_debug_ranges']['rssMB']:.2f} MB "
        f"({100 * (ranges['no_debug_ranges']['rssMB'] / ranges['default']['rssMB'] - 1):+.1f} %); import CPU "
        f"{ranges['default']['importCpuMs']:.0f} ms vs {ranges['no_debug_ranges']['importCpuMs']:.0f} ms.",
    ]
    return "\n".join(lines) + "\n"


def figures_block(data: dict[str, Any]) -> str:
    """Markers, the rendered figures and the data they were rendered from."""
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return f"{FIGURES_BEGIN}\n{render_figures(data)}{DATA_PREFIX}{encoded} -->\n{FIGURES_END}"


def read_figures(doc: str) -> tuple[str, dict[str, Any]]:
    """The figures as they stand in ``doc`` and the data stored with them."""
    found = re.search(
        re.escape(FIGURES_BEGIN) + r"\n(.*)" + re.escape(DATA_PREFIX) + r"(\{.*\}) -->\n"
        + re.escape(FIGURES_END),
        doc,
        re.DOTALL,
    )
    if found is None:
        raise ValueError(f"no {FIGURES_BEGIN} ... {FIGURES_END} section with its data")
    data: dict[str, Any] = json.loads(found.group(2))
    return found.group(1), data


def replace_figures(doc: str, data: dict[str, Any]) -> str:
    begin, end = doc.index(FIGURES_BEGIN), doc.index(FIGURES_END) + len(FIGURES_END)
    return doc[:begin] + figures_block(data) + doc[end:]


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return value


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=3, help="sandbox trials per variant")
    parser.add_argument("--starts", type=int, default=300, help="script and interpreter starts per variant")
    parser.add_argument("--runs", type=int, default=5, help="runs of each direct import or workload")
    parser.add_argument("--update-doc", action="store_true", help=f"write the figures into {DOC}")
    args = parser.parse_args()
    from lambda_wrapper_dev.sandbox.layer_source import working_tree_layer_dir

    work = Path(tempfile.mkdtemp(prefix="measure-tweaks-"))
    try:
        layer = working_tree_layer_dir()
        task_root = build_task_root(_mkdir(work / "task"))
        variants: list[str | None] = [None, *TWEAKS]
        results: dict[str, list[dict[str, float]]] = {
            "all off" if v is None else v.lower(): [] for v in variants
        }
        for trial in range(args.trials):
            for variant in variants:
                results["all off" if variant is None else variant.lower()].append(
                    run_trial(task_root, layer, variant)
                )
            print(f"sandbox trial {trial + 1}/{args.trials} done", file=sys.stderr)
        spreads = [(max(r["importCpuMs"] for r in runs) - min(r["importCpuMs"] for r in runs)) / 2
                   for runs in results.values()]
        data = {
            "setting": setting(),
            "counts": {"trials": args.trials, "starts": args.starts, "runs": args.runs},
            "sandbox": {
                "medians": {
                    variant: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                    for variant, runs in results.items()
                },
                "cpuSpreadMs": statistics.median(spreads),
            },
            "block": block_cost(_mkdir(work / "block"), args.starts),
            "faulthandler": faulthandler_cost(args.starts),
        }
        print("script and interpreter starts done", file=sys.stderr)
        data["bytecode"] = bytecode_serialisation(task_root, args.runs)
        data["malloc"] = malloc_arenas(args.runs)
        data["debug_ranges"] = debug_ranges(task_root, args.runs)
        data = rounded(data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.update_doc:
        DOC.write_text(replace_figures(DOC.read_text(), data))
        print(f"wrote the figures into {DOC}", file=sys.stderr)
    else:
        print(render_figures(data))
    return 0


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
