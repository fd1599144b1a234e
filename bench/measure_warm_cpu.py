"""The CPU the wrapper adds to each warm invocation, on the handler's thread and on ours, on the RIE.

Each environment is fresh: ``WARM_UP`` invocations are left out, then the function
(``bench/functions/app.py``, printing ``--lines`` lines) is invoked ``--invokes`` times
back to back while the CPU time of every thread of the runtime process is read from
``/proc/<pid>/task/*/schedstat`` before and after. Enough invocations run for the
extension's periodic flushes (about one a second under dense traffic) to fall inside
the window, so their cost is shared out over the invocations it covers, as it is in
service. Per invocation: the main thread's CPU (where awslambdaric calls the handler,
and where the supervisor's work shows), the other threads' (the extension's event loop
and its flushes, the listener, the watchdog), and the RIE's reported duration.

Bare and the wrapper's defaults alternate within each round (``--against DIR`` adds the
defaults with another layer tree, e.g. a build of an earlier commit), so every variant
sees the same machine load; the figures are medians over rounds of each round's
difference from bare.

``.venv/bin/python -m bench.measure_warm_cpu [--rounds 7] [--invokes 3000] [--lines 0] [--against DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from pathlib import Path

from .layers import build_own_layer, task_root
from .platforms import EnvironmentSpec, rie_unavailable_reason, runtime_pid, start_environment
from .variants import BARE, WRAPPER_DEFAULT

WARM_UP = 5
MEMORY_MB = 1769  # the RIE limits no CPU: the size is only a number it passes on


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """On-CPU time of each thread of ``pid`` so far, in ns."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            found[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return found


def one_environment(layer: Path | None, invokes: int, lines: int) -> dict[str, float]:
    """µs per warm invocation: main thread, other threads, and the RIE's duration."""
    env = WRAPPER_DEFAULT.environment("http://127.0.0.1:9") if layer is not None else {}
    spec = EnvironmentSpec(task_root(), BARE.handler, layer, env, memory_mb=MEMORY_MB)
    payload = json.dumps({"lines": lines}).encode()
    environment = start_environment("rie", spec)
    try:
        for _ in range(WARM_UP):
            environment.invoke(payload)
        pid = runtime_pid(environment.runtime_pid_roots())
        if pid is None:
            raise RuntimeError("the runtime process was not found")
        before = thread_cpu_ns(pid)
        for _ in range(invokes):
            if not environment.invoke(payload).ok:
                raise RuntimeError("an invocation failed")
        after = thread_cpu_ns(pid)
    finally:
        observations = environment.stop()
    main = after[pid] - before.get(pid, 0)
    others = sum(after[tid] - before.get(tid, 0) for tid in after if tid != pid)
    warm = observations.invocations[-invokes:]
    return {
        "main": main / invokes / 1000.0,
        "other": others / invokes / 1000.0,
        "duration": sum(float(i.report_ms or 0.0) for i in warm) / invokes * 1000.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--invokes", type=int, default=3000)
    parser.add_argument("--lines", type=int, default=0, help="lines the function prints per invocation")
    parser.add_argument("--against", type=Path, help="another layer tree to run with the defaults")
    args = parser.parse_args()
    reason = rie_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    layers: dict[str, Path | None] = {"bare": None, "defaults": build_own_layer().path}
    if args.against is not None:
        layers["against"] = args.against.resolve()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in layers}
    for round_number in range(args.rounds):
        order = list(layers) if round_number % 2 == 0 else list(reversed(layers))
        for name in order:
            runs[name].append(one_environment(layers[name], args.invokes, args.lines))
    print(f"{args.invokes} warm invocations per environment, {args.lines} lines each, {args.rounds} rounds; "
          "µs per invocation, medians (added: of each round's difference from bare)")
    keys = ("main", "other", "duration")
    for name, results in runs.items():
        pairs = list(zip(results, runs["bare"], strict=True))
        figures = {key: statistics.median(run[key] for run in results) for key in keys}
        added = {key: statistics.median(run[key] - bare[key] for run, bare in pairs) for key in keys}
        print(f"{name:9s} main thread {figures['main']:7.1f}  other threads {figures['other']:6.1f}  "
              f"duration {figures['duration']:7.1f}  | added: main {added['main']:+6.1f}  other "
              f"{added['other']:+6.1f}  total {added['main'] + added['other']:+6.1f}  duration "
              f"{added['duration']:+6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
