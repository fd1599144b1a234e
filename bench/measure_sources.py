"""Warm cost of the self source of per-invocation records, in the sandbox.

The cost is what the supervisor spends on the handler's thread, which it reports
itself as ``WrapperOverhead`` (EMF, one line per invocation). Each environment runs the
bench function ``--invokes`` times; the first ``WARM_UP`` are left out. Two pairs are
compared, each against its own baseline, ``LAMBDA_WRAPPER_TELEMETRY_SOURCE=platform``,
on the same platform:

- ``self``: the Telemetry API refused (the RIE's 202), ``auto`` falls back to self;
- ``auto``: the Telemetry API answering, ``auto`` holds self records for the platform's.

In each round the four environments live side by side and are invoked in turn (A B C
D A B C D ...), so the slow phases of a shared machine hit all alike; a round's added
cost is the variant's median minus its baseline's median in that round, and the figure
is the median over rounds, checked against ``BUDGET_MS`` (exit status 1 when missed).

``.venv/bin/python -m bench.measure_sources [--memory 128,1769] [--rounds 3] [--invokes 500]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from pathlib import Path

from .layers import build_own_layer, task_root
from .stats import median

WARM_UP = 20
BUDGET_MS = 0.02  # the self source's warm cost (issue 16), for either pair
SOURCE_SETTING = "LAMBDA_WRAPPER_TELEMETRY_SOURCE"
# name: (the Telemetry API answers, the setting)
VARIANTS = {
    "platform-refused": (False, "platform"),
    "self": (False, "auto"),
    "platform": (True, "platform"),
    "auto": (True, "auto"),
}
BASELINE = {"self": "platform-refused", "auto": "platform"}


def overhead_ms(output_lines: list[str]) -> list[float]:
    """``WrapperOverhead`` of each EMF document the function printed, in order."""
    found = []
    for line in output_lines:
        if '"WrapperOverhead"' not in line:
            continue
        try:
            document = json.loads(line[line.index("{"):])
        except ValueError:
            continue
        value = document.get("WrapperOverhead")
        if isinstance(value, (int, float)):
            found.append(float(value))
    return found


def run_round(layer: Path, memory_mb: int, invokes: int) -> dict[str, list[float]]:
    """Every variant in its own environment, all alive at once, invoked in turn (A B C D A
    B C D ...): a slow moment of the machine hits them alike."""
    from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

    workdir = Path(tempfile.mkdtemp(prefix="lw-sources-"))
    try:
        with contextlib.ExitStack() as stack:
            sandboxes = {}
            for name, (telemetry_api, setting) in VARIANTS.items():
                spec = FunctionSpec(task_root=task_root(), handler="app.handler", layer_dir=layer,
                                    memory_mb=memory_mb, env={SOURCE_SETTING: setting},
                                    tmp_dir=workdir / name, telemetry_api=telemetry_api,
                                    function_name="bench")
                sandboxes[name] = stack.enter_context(Sandbox(spec))
            for _ in range(invokes):
                for sandbox in sandboxes.values():
                    sandbox.invoke(b"{}")
        return {name: overhead_ms(list(box.function_output))[WARM_UP:] for name, box in sandboxes.items()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", default="128,1769", help="memory sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--invokes", type=int, default=500)
    args = parser.parse_args(argv)
    layer = build_own_layer().path
    missed = False
    for memory_mb in (int(size) for size in args.memory.split(",")):
        medians: dict[str, list[float]] = {name: [] for name in VARIANTS}
        added: dict[str, list[float]] = {name: [] for name in BASELINE}
        for round_number in range(args.rounds):
            this_round = {}
            for name, values in run_round(layer, memory_mb, args.invokes).items():
                value = median(values)
                if value is None:
                    raise SystemExit(f"{name} at {memory_mb} MB printed no WrapperOverhead")
                this_round[name] = value
                medians[name].append(value)
            for name, baseline in BASELINE.items():
                added[name].append(this_round[name] - this_round[baseline])
            cells = " ".join(f"{name} {value:.4f}" for name, value in this_round.items())
            print(f"{memory_mb} MB round {round_number + 1}: median WrapperOverhead ms: {cells}", flush=True)
        for name, baseline in BASELINE.items():
            rounds = " ".join(f"{value:+.4f}" for value in added[name])
            figure = median(added[name]) or 0.0
            verdict = "pass" if figure <= BUDGET_MS else "MISS"
            missed = missed or verdict == "MISS"
            print(f"{verdict}  {memory_mb} MB {name} vs {baseline}: {figure:+.4f} ms added "
                  f"(limit {BUDGET_MS} ms; rounds: {rounds})", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
