"""CPU per log line: our structured logs against Powertools Logger, and write the section.

``LAMBDA_WRAPPER_LOGS=structlog`` formats the function's logging as one JSON object per
line (``lambda_wrapper.instruments.logs``); Powertools' ``Logger`` is what users compare
it with. One worker process per trial runs both in turn, in rounds, inside an
invocation (our invocation context set; Powertools' ``inject_lambda_context`` on a
handler), each writing its lines to /dev/null through a stream handler, as both do to
stdout in a function. The figure is CPU time (``time.process_time``) per line, so that
other load on the machine counts less; per trial the best round, then the median over
trials. Three kinds of line:

- ``logging``: ``logging.getLogger("app").info("order %s placed", 42)``, the standard
  library call most functions make (Powertools: ``logger.info("order %s placed", 42)``);
- ``extra fields``: the same with two fields of the caller's (``extra=`` for both);
- ``structlog``: ``structlog.get_logger().info("order placed", order=42)``; Powertools
  has no structlog API, so its row repeats its ``extra fields`` call.

    .venv/bin/python -m bench.measure_log_lines --update-doc
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.measure_tweaks import rounded, setting

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Cost per log line"
KINDS = ("logging", "extra fields", "structlog")

WORKER = r'''
import io, json, logging, os, sys, time

lines, rounds = int(sys.argv[1]), int(sys.argv[2])
devnull = open(os.devnull, "w")


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"


# Ours, as the supervisor installs it (no awslambdaric handler here: a stream handler).
real_stdout, sys.stdout = sys.stdout, devnull
from lambda_wrapper.instruments import logs
from lambda_wrapper.instruments import CURRENT
import structlog

logs.install(json_format=False, level_name="INFO")
sys.stdout = real_stdout
ours = logging.getLogger("app")
ours_struct = structlog.get_logger()

from aws_lambda_powertools import Logger

powertools = Logger(service="bench", logger_handler=logging.StreamHandler(devnull))


def ours_lines(kind):
    CURRENT.invocation_starts(Context.aws_request_id, False)
    if kind == "logging":
        for n in range(lines):
            ours.info("order %s placed", n)
    elif kind == "extra fields":
        for n in range(lines):
            ours.info("order %s placed", n, extra={"customer": "c-1", "items": 3})
    else:
        for n in range(lines):
            ours_struct.info("order placed", order=n, customer="c-1")


@powertools.inject_lambda_context
def powertools_handler(event, context):
    kind = event["kind"]
    if kind == "logging":
        for n in range(lines):
            powertools.info("order %s placed", n)
    else:
        for n in range(lines):
            powertools.info("order %s placed", n, extra={"customer": "c-1", "items": 3})


best = {}
for _ in range(rounds):
    for kind in ("logging", "extra fields", "structlog"):
        for name, run in (("lambda-wrapper", lambda: ours_lines(kind)),
                          ("powertools", lambda: powertools_handler({"kind": kind}, Context()))):
            started = time.process_time()
            run()
            per_line = (time.process_time() - started) / lines * 1e6
            key = f"{name}|{kind}"
            best[key] = min(best.get(key, per_line), per_line)
print(json.dumps(best))
'''


def trial(lines: int, rounds: int) -> dict[str, float]:
    from bench.layers import bench_cache

    powertools = bench_cache() / "layers" / "powertools" / "python"
    if not (powertools / "aws_lambda_powertools").is_dir():
        from bench.layers import build_third_party_layer, stderr_log
        from bench.variants import RECIPES

        powertools = build_third_party_layer(RECIPES["powertools"], stderr_log).path
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(lines), str(rounds)],
        capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO / 'src'}:{powertools}",
             "POWERTOOLS_SERVICE_NAME": "bench", "AWS_REGION": "us-east-1"},
    )
    figures: dict[str, float] = __import__("json").loads(result.stdout.splitlines()[-1])
    return figures


def measure(trials: int, lines: int, rounds: int) -> dict[str, Any]:
    runs = [trial(lines, rounds) for _ in range(trials)]
    return rounded({
        "setting": setting(),
        "counts": {"trials": trials, "lines": lines, "rounds": rounds},
        "cpuPerLineUs": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
    })


def render(data: dict[str, Any]) -> str:
    where, counts, per_line = data["setting"], data["counts"], data["cpuPerLineUs"]
    dirty = " (with uncommitted changes to the measured code)" if where.get("uncommitted") else ""
    lines = [
        f"Measured {where['date']} on commit `{where['commit']}`{dirty}, {where['machine']}, "
        f"Python {where['python']}, by `bench/measure_log_lines.py`: CPU time per line, written to "
        f"/dev/null through a stream handler inside an invocation ({counts['lines']:,} lines per round, "
        f"the best of {counts['rounds']} rounds per process, median of {counts['trials']} processes).",
        "",
        "| line | `LAMBDA_WRAPPER_LOGS=structlog` | Powertools `Logger` | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    calls = {
        "logging": "`logging` call, `%s` argument",
        "extra fields": "the same with two `extra=` fields",
        "structlog": "`structlog.get_logger().info(...)`, two fields (Powertools: its `extra=` call)",
    }
    powertools_kind = {"logging": "logging", "extra fields": "extra fields", "structlog": "extra fields"}
    for kind in KINDS:
        ours = per_line[f"lambda-wrapper|{kind}"]
        theirs = per_line[f"powertools|{powertools_kind[kind]}"]
        lines.append(f"| {calls[kind]} | {ours:.1f} µs | {theirs:.1f} µs | {ours / theirs:.2f}x |")
    return "\n".join(lines) + "\n"


SECTION = DocSection("log-lines", HEADING, lambda data: render(data))
read_block = SECTION.read
write_block = SECTION.write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=7, help="worker processes")
    parser.add_argument("--lines", type=int, default=5000, help="lines per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per process (the best counts)")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    SECTION.publish(DOC, measure(args.trials, args.lines, args.rounds), args.update_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
