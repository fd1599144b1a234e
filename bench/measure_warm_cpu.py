"""The CPU the wrapper adds to each warm invocation, on the handler's thread and on ours.

Each round starts a fresh environment per variant, side by side: ``WARM_UP``
invocations are left out, then the function (``bench/functions/app.py``, printing
``--lines`` lines) is invoked ``--invokes`` times in each, the variants in turn, while
the CPU time of every thread of each runtime process is read from
``/proc/<pid>/task/*/schedstat`` before and after. Enough invocations run for the
extension's periodic flushes (about one a second under dense traffic) to fall inside
the window, so their cost is shared out over the invocations it covers, as it is in
service. Per invocation: the main thread's CPU (where awslambdaric calls the handler,
and where the supervisor's work shows), the other threads' (the extension's event loop
and its flushes, the listener, the watchdog), and the RIE's reported duration.

The variants are bare and the wrapper's defaults (``--against DIR`` adds the defaults
with another layer tree, e.g. a build of an earlier commit); invoked in turn, they see
the same machine load. The figures are medians over rounds of each round's difference
from bare.

``.venv/bin/python -m bench.measure_warm_cpu [--rounds 7] [--invokes 3000] [--lines 0] [--against DIR]
[--python X.Y]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from pathlib import Path

from .layers import build_own_layer, build_third_party_layer, stderr_log, task_root
from .platforms import EnvironmentSpec, rie_unavailable_reason, runtime_pid, start_environment
from .variants import BARE, OWN_LAYER, RECIPES, UNREACHABLE_SINK, WRAPPER_DEFAULT, Variant, select

WARM_UP = 5
MEMORY_MB = 1769  # the RIE limits no CPU: the size is only a number it passes on


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """On-CPU time of each thread of ``pid`` so far, in ns."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            found[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return found


def one_round(
    specs: dict[str, EnvironmentSpec], invokes: int, lines: int, platform: str = "rie"
) -> dict[str, dict[str, float]]:
    """µs per warm invocation of each variant: main thread, other threads, the platform's
    runtime duration and its reported duration.

    The environments live side by side and are invoked in turn (A B C A B C ...), so a
    busy phase of the shared machine hits all of them alike."""
    payload = json.dumps({"lines": lines}).encode()
    environments = {}
    try:
        for name, spec in specs.items():
            environments[name] = start_environment(platform, spec)
        pids = {}
        for name, environment in environments.items():
            for _ in range(WARM_UP):
                environment.invoke(payload)
            pid = runtime_pid(environment.runtime_pid_roots())
            if pid is None:
                raise RuntimeError(f"{name}: the runtime process was not found")
            pids[name] = pid
        before = {name: thread_cpu_ns(pid) for name, pid in pids.items()}
        for _ in range(invokes):
            for name, environment in environments.items():
                if not environment.invoke(payload).ok:
                    raise RuntimeError(f"{name}: an invocation failed")
        after = {name: thread_cpu_ns(pid) for name, pid in pids.items()}
    finally:
        observations = {name: environment.stop() for name, environment in environments.items()}
    results = {}
    for name, pid in pids.items():
        main = after[name][pid] - before[name].get(pid, 0)
        others = sum(ns - before[name].get(tid, 0) for tid, ns in after[name].items() if tid != pid)
        warm = observations[name].invocations[-invokes:]
        results[name] = {
            "main": main / invokes / 1000.0,
            "other": others / invokes / 1000.0,
            "runtime": sum(float(i.runtime_ms or 0.0) for i in warm) / invokes * 1000.0,
            "duration": sum(float(i.report_ms or 0.0) for i in warm) / invokes * 1000.0,
        }
    return results


def variant_specs(
    variants: tuple[Variant, ...], against: Path | None, without: tuple[str, ...] = (),
    python_version: str | None = None,
) -> dict[str, EnvironmentSpec]:
    """Each variant with its layer (ours built from this checkout, a competitor's by pip),
    handler and environment; ``against``: ours once more with that layer tree;
    ``without``: ours once more without each of those settings, where they set it."""
    root = task_root()
    specs = {}
    for variant in variants:
        layer = None
        if variant.layer == OWN_LAYER:
            layer = build_own_layer().path
        elif variant.layer is not None:
            layer = build_third_party_layer(RECIPES[variant.layer], stderr_log).path
        env = variant.environment(UNREACHABLE_SINK)
        specs[variant.name] = EnvironmentSpec(
            root, variant.handler, layer, env, memory_mb=MEMORY_MB, python_version=python_version
        )
        if against is not None and variant.layer == OWN_LAYER:
            specs[f"{variant.name}@against"] = EnvironmentSpec(
                root, variant.handler, against, env, memory_mb=MEMORY_MB, python_version=python_version
            )
        for name in without:
            if variant.layer == OWN_LAYER and name in env:
                reduced = {key: value for key, value in env.items() if key != name}
                short = name.removeprefix("LAMBDA_WRAPPER_").lower()
                specs[f"{variant.name}-{short}"] = EnvironmentSpec(
                    root, variant.handler, layer, reduced, memory_mb=MEMORY_MB, python_version=python_version
                )
    return specs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--invokes", type=int, default=3000)
    parser.add_argument("--lines", type=int, default=0, help="lines the function prints per invocation")
    parser.add_argument("--variants", default=WRAPPER_DEFAULT.name,
                        help="comma list of variants beside bare (bench/variants.py)")
    parser.add_argument("--platform", choices=("rie", "sandbox"), default="rie")
    parser.add_argument("--against", type=Path, help="another layer tree to run each of our variants with")
    parser.add_argument("--without", default="",
                        help="comma list of settings: each of our variants once more without each")
    parser.add_argument("--python", help="the runtime's Python, X.Y (default: this interpreter's)")
    args = parser.parse_args()
    if args.platform == "rie":
        reason = rie_unavailable_reason()
        if reason:
            raise SystemExit(reason)
    variants = select(args.variants)
    without = tuple(name.strip() for name in args.without.split(",") if name.strip())
    specs = variant_specs(variants, args.against.resolve() if args.against is not None else None, without,
                          args.python)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in specs}
    for _ in range(args.rounds):
        for name, result in one_round(specs, args.invokes, args.lines, args.platform).items():
            runs[name].append(result)
    print(f"{args.platform}: {args.invokes} warm invocations per environment, {args.lines} lines each, "
          f"{args.rounds} rounds; µs per invocation, medians (added: of each round's difference from bare)")
    keys = ("main", "other", "runtime", "duration")
    width = max(len(name) for name in runs)
    for name, results in runs.items():
        pairs = list(zip(results, runs[BARE.name], strict=True))
        figures = {key: statistics.median(run[key] for run in results) for key in keys}
        added = {key: statistics.median(run[key] - bare[key] for run, bare in pairs) for key in keys}
        total = added["main"] + added["other"]
        print(f"{name:{width}s} main thread {figures['main']:7.1f}  other threads {figures['other']:6.1f}  "
              f"runtime {figures['runtime']:7.1f}  duration {figures['duration']:7.1f}  | added: main "
              f"{added['main']:+6.1f}  other {added['other']:+6.1f}  total {total:+6.1f}"
              f"  runtime {added['runtime']:+6.1f}  duration {added['duration']:+6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
