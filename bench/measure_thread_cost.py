"""What another live thread costs a print loop, and write the section.

A chatty function under the wrapper pays for our threads even while they sleep in
``poll``: awslambdaric writes stdout unbuffered (a ``print`` is two ``write`` calls), and
while two threads share the process's descriptor table, Linux takes and drops a
reference on the open file in every system call on a descriptor, where a process whose
table is not shared skips both. This script shows it apart from the rest of the
wrapper: one worker process per trial prints lines to /dev/null, stdout unbuffered, in
each of these states, the states in turn within the trial:

- ``alone``: no other thread;
- ``exited``: a thread was started and has ended;
- ``shared``: a thread sleeps in ``poll``, sharing the table (our listener's state);
- ``own table``: the same thread, after ``unshare(CLONE_FILES)`` (``os.unshare`` on
  3.12+, the C library's before).

The figure is the main thread's CPU time per line (``time.thread_time``): per trial the
best of its rounds, then the median over trials, for each Lambda Python on this machine.

    .venv/bin/python -m bench.measure_thread_cost --update-doc
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.measure_tweaks import rounded, setting

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## What a sleeping thread costs a chatty function"
STATES = ("alone", "exited", "shared", "own table")

WORKER = r'''
import json, os, select, sys, threading, time

state, lines, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
read_end, write_end = os.pipe()


def sleep_in_poll(own_table):
    if own_table:
        if hasattr(os, "unshare"):
            os.unshare(os.CLONE_FILES)
        else:  # before 3.12: the C library's call
            import ctypes

            if ctypes.CDLL(None, use_errno=True).unshare(0x400) != 0:  # CLONE_FILES
                raise OSError(ctypes.get_errno(), "unshare")
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    poller.poll()


if state == "exited":
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
elif state in ("shared", "own table"):
    threading.Thread(target=sleep_in_poll, args=(state == "own table",), daemon=True).start()
time.sleep(0.05)  # the thread is in poll by now
best = float("inf")
for _ in range(rounds):
    started = time.thread_time()
    for index in range(lines):
        print(f"line {index} of a chatty function's output")
    best = min(best, time.thread_time() - started)
print(json.dumps(best / lines * 1e6), file=sys.stderr)
'''


def one_state(interpreter: str, state: str, lines: int, rounds: int) -> float:
    # -u: one write per call, as awslambdaric's stdout does. Into /dev/null: a pipe's
    # reader would add its own wake-ups to the figure, the same in every state.
    result = subprocess.run(
        [interpreter, "-E", "-s", "-u", "-c", WORKER, state, str(lines), str(rounds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    per_line: float = json.loads(result.stderr.strip().splitlines()[-1])
    return per_line


def measure(trials: int, lines: int, rounds: int) -> dict[str, Any]:
    from lambda_wrapper_dev.sandbox.runtime_image import available_python_versions, find_interpreter

    per_python: dict[str, dict[str, float]] = {}
    for version in available_python_versions():
        interpreter = find_interpreter(version)
        runs: dict[str, list[float]] = {state: [] for state in STATES}
        for _ in range(trials):
            for state in STATES:  # in turn, so a busy phase of the machine hits each alike
                runs[state].append(one_state(interpreter, state, lines, rounds))
        per_python[version] = {state: statistics.median(values) for state, values in runs.items()}
    return rounded({
        "setting": setting(),
        "counts": {"trials": trials, "lines": lines, "rounds": rounds},
        "cpuPerLineUs": per_python,
    })


def render(data: dict[str, Any]) -> str:
    where, counts, per_python = data["setting"], data["counts"], data["cpuPerLineUs"]
    dirty = " (with uncommitted changes to the measured code)" if where.get("uncommitted") else ""
    lines = [
        f"Measured {where['date']} on commit `{where['commit']}`{dirty}, {where['machine']}, by "
        f"`bench/measure_thread_cost.py`: the main thread's CPU time per `print` to /dev/null, stdout "
        f"unbuffered as awslambdaric has it ({counts['lines']:,} lines per round, the best of "
        f"{counts['rounds']} rounds per process, median of {counts['trials']} processes per state).",
        "",
        "| Python | alone | a thread that has exited | a thread asleep in `poll` | "
        "the same thread with its own descriptor table |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for version, figures in sorted(per_python.items(), key=lambda item: tuple(map(int, item[0].split(".")))):
        alone = figures["alone"]
        cells = [f"{alone:.2f} µs"]
        for state in STATES[1:]:
            value = figures[state]
            cells.append(f"{value:.2f} µs ({value / alone:.2f}x)")
        lines.append(f"| {version} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "A sleeping thread costs nothing by what it runs: its cost is that it shares the descriptor "
        "table. The extension's listener must be alive while the function runs (the platform posts "
        "telemetry then), so in-process telemetry puts this cost on every system call the function makes "
        "on a descriptor. It is the part of the wrapper's cost on a chatty function's handler thread that "
        "grows with its lines: compare the extra main-thread CPU at 0 and 1,000 lines in the chatty "
        "section above.",
        "",
        "A thread of ours with a descriptor table of its own would remove it, and the wrapper does not do "
        "that: a descriptor is closed by whichever thread drops or collects the object that owns it, and "
        "the cyclic garbage collector runs on any thread. A socket of the function's collected on our "
        "thread would be closed in our table (closing whatever of ours has that number, and leaking the "
        "function's), and one of ours collected on the function's thread would close one of the function's.",
    ]
    return "\n".join(lines) + "\n"


SECTION = DocSection("thread-cost", HEADING, render)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=7, help="worker processes per state and Python")
    parser.add_argument("--lines", type=int, default=5000, help="lines per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per process (the best counts)")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    SECTION.publish(DOC, measure(args.trials, args.lines, args.rounds), args.update_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
