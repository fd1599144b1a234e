"""Measure the wrapper's environment tweaks in the local sandbox (docs/tweaks.md).

Each trial starts a fresh sandbox (read-only /var/task and /opt, like Lambda), runs a
function through the wrapper that imports boto3 from source without .pyc files (a zip
deployed without bytecode) and creates an S3 client, invokes it three times, and
records: the platform's init duration, the function's own import time (wall and
CPU), and the process RSS and peak RSS after the third invoke, each of which runs
four threads that allocate and free malloc-sized buffers. Variants (all tweaks off,
then each one alone) are interleaved so that machine noise spreads over all of them.

    .venv/bin/python bench/measure_tweaks.py --trials 9
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWEAKS = ("FAULTHANDLER", "DONT_WRITE_BYTECODE", "MALLOC_ARENA_MAX", "NO_DEBUG_RANGES")
PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")

FUNCTION = """
import resource
import time
_t, _cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
import boto3
CLIENT = boto3.client("s3", region_name="us-east-1")
IMPORT_MS = (time.perf_counter() - _t) * 1000
_end = resource.getrusage(resource.RUSAGE_SELF)
IMPORT_CPU_MS = (_end.ru_utime + _end.ru_stime - _cpu.ru_utime - _cpu.ru_stime) * 1000
import random
import threading

def _work(seed):
    # Threads allocating and freeing malloc-sized buffers (pymalloc serves only
    # objects up to 512 bytes): where glibc's per-thread arenas show in RSS.
    rng = random.Random(seed)
    kept = []
    for _ in range(4000):
        kept.append(bytes(rng.randrange(1024, 64 * 1024)))
        if len(kept) > 200:
            del kept[rng.randrange(len(kept))]

def handler(event, context):
    threads = [threading.Thread(target=_work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {"importMs": IMPORT_MS, "importCpuMs": IMPORT_CPU_MS,
            "rssKB": int(status["VmRSS"].split()[0]), "hwmKB": int(status["VmHWM"].split()[0])}
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
    from lambda_wrapper.sandbox import FunctionSpec, Sandbox

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=9)
    args = parser.parse_args()
    from lambda_wrapper.sandbox.layer_source import working_tree_layer_dir

    work = Path(tempfile.mkdtemp(prefix="measure-tweaks-"))
    try:
        layer = working_tree_layer_dir()
        task_root = build_task_root(_mkdir(work / "task"))
        variants: list[str | None] = [None, *TWEAKS]
        results: dict[str, list[dict[str, float]]] = {str(v): [] for v in variants}
        for trial in range(args.trials):
            for variant in variants:
                results[str(variant)].append(run_trial(task_root, layer, variant))
            print(f"trial {trial + 1}/{args.trials} done", file=sys.stderr)
        summary = {
            variant: {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
            for variant, runs in results.items()
        }
        print(json.dumps(summary, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
