"""Measure import time of the layer's packages from a read-only mount under each bytecode choice.

Run as root (it uses a private mount namespace for the read-only bind mount, like Lambda's /opt):
    .venv/bin/python layer-build/measure_bytecode.py [--runs 25] [--python python3.12]
The numbers quoted in layer-build/README.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from layerbuild.architectures import host_architecture
from layerbuild.inputs import LayerInputs
from layerbuild.interpreters import find_interpreters
from layerbuild.progress import SILENT
from layerbuild.tree import assemble_tree

MODULES = ("structlog", "psutil", "lambda_wrapper")
ZIP_EPOCH_SECONDS = 315532800  # 1980-01-01, the time a deterministic zip gives every file

_TIMER = """
import sys, time
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
for name in sys.argv[2:]:
    __import__(name)
print(time.perf_counter() - start)
"""


def _import_seconds(python: str, site_dir: Path, runs: int) -> float:
    script = (
        f"mount --bind {site_dir} {site_dir} && mount -o remount,ro,bind {site_dir} && "
        f'for i in $(seq {runs}); do {python} -S -c "$TIMER" {site_dir} {" ".join(MODULES)}; done'
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environment["TIMER"] = _TIMER
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, env=environment, check=True,
    )  # fmt: skip
    return statistics.median(float(line) for line in result.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--python", default="3.12", help="runtime version to measure")
    args = parser.parse_args()
    inputs = LayerInputs.from_repo()
    interpreter = next(
        i for i in find_interpreters(inputs.cache_dir / "interpreters.json") if i.version == args.python
    )
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for case, mode in (
            ("unchecked-hash", "unchecked-hash"),
            ("checked-hash", "checked-hash"),
            ("timestamp, source mtimes kept", "timestamp"),
            ("timestamp, extracted from zip (mtime 1980)", "timestamp"),
            ("no bytecode", None),
        ):
            root = Path(scratch) / f"case{len(results)}"
            tree = assemble_tree(
                root,
                host_architecture(),
                inputs,
                [interpreter],
                SILENT,
                invalidation_mode=mode or "unchecked-hash",
            )
            site_dir = tree.root / "python"
            if mode is None:
                for cache in list(site_dir.rglob("__pycache__")):
                    shutil.rmtree(cache)
            if "1980" in case:
                for source in site_dir.rglob("*.py"):
                    os.utime(source, (ZIP_EPOCH_SECONDS, ZIP_EPOCH_SECONDS))
            results[case] = round(_import_seconds(str(interpreter.executable), site_dir, args.runs) * 1000, 1)
    print(
        json.dumps(
            {"python": interpreter.full_version, "modules": MODULES, "median_import_ms": results}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
