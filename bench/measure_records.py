"""CPU time per telemetry record through the in-process pipeline, per exporter.

Batches shaped like the platform's (compact JSON, ``function`` records 1,000 per POST,
plus one platform batch per invocation) go through the real stages on one thread,
each timed with ``time.thread_time``. The function records come in two kinds, each
measured on its own: ``text``, the bench function's printed lines (the record is the
line), and ``json``, the records of ``AWS_LAMBDA_LOG_FORMAT=JSON`` (the record is
awslambdaric's object: timestamp, level, message, logger, requestId).

- ``accept``: the listener's store step with the pipeline's ``accept`` as its sink
  (spool append per exporter, in-memory queue); the socket read is not included,
- ``decode``: JSON to ``TelemetryEvent`` and skipping our own lines,
- ``export``: the exporters (``file`` to a file under a temporary directory, ``emf``
  to ``/dev/null``, ``otlp`` over HTTP to ``bench.sink`` in its own process).

Other processes on the machine only ever add to a thread's CPU time (shared caches and
cores), so each figure is the run with the least total CPU of ``--repeat`` runs.

``.venv/bin/python -m bench.measure_records [--records N] [--exporters file,emf,otlp]
[--lines text,json] [--repeat N]`` prints one line per exporter and kind of line, in
microseconds per record for each stage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from lambda_wrapper.export import Pipeline
from lambda_wrapper.extension import TelemetryListener
from lambda_wrapper_dev.sandbox import records

LINE_PADDING = "x" * 48
RECORDS_PER_BATCH = 1000
REQUEST_ID = "6f1c8a1e-2b7d-4c41-9d51-3f0e6c1a2b3c"
LINE_KINDS = ("text", "json")
# The platform posts compact JSON.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def function_record(kind: str, number: int) -> str | dict[str, str]:
    """Line ``number`` of the bench function as the platform records it."""
    if kind == "text":
        return f"bench line {number} {LINE_PADDING}\n"
    return {"timestamp": records.iso_time(), "level": "INFO",
            "message": f"bench line {number} {LINE_PADDING}", "logger": "root", "requestId": REQUEST_ID}


def function_batches(total: int, kind: str = "text") -> list[bytes]:
    """``total`` function records of ``kind`` in POST bodies of ``RECORDS_PER_BATCH``."""
    bodies = []
    for start in range(0, total, RECORDS_PER_BATCH):
        items = [records.event("function", function_record(kind, n))
                 for n in range(start, min(total, start + RECORDS_PER_BATCH))]
        bodies.append(_ENCODE(items).encode())
    return bodies


def platform_batch() -> bytes:
    metrics = {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 128, "maxMemoryUsedMB": 60}
    items = [
        records.event("platform.start", {"requestId": REQUEST_ID, "version": "$LATEST"}),
        records.event("platform.runtimeDone", {"requestId": REQUEST_ID, "status": "success",
                                               "metrics": {"durationMs": 12.0, "producedBytes": 10}}),
        records.event("platform.report", {"requestId": REQUEST_ID, "status": "success", "metrics": metrics}),
    ]
    return _ENCODE(items).encode()


def build_exporter(name: str, sink_url: str | None, directory: str) -> Any:
    if name == "file":
        from lambda_wrapper.export.file import FileExporter

        return FileExporter(os.path.join(directory, "telemetry.ndjson"))
    if name == "emf":
        from lambda_wrapper.export.emf import EmfExporter

        return EmfExporter("LambdaWrapper", ())
    if name == "otlp":
        from lambda_wrapper.export.otlp import OtlpExporter
        from lambda_wrapper.settings import load

        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": str(sink_url), "LAMBDA_WRAPPER_EXPORTERS": "otlp"}
        return OtlpExporter.from_settings(load(environ), environ)
    raise ValueError(f"unknown exporter {name}")


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """EMF writes to the runtime's stdout: keep it out of the report."""
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def timed(action: Callable[[], object]) -> float:
    started = time.thread_time()
    action()
    return time.thread_time() - started


def measure(exporter_name: str, total: int, sink_url: str | None, kind: str = "text") -> dict[str, float]:
    """Microseconds of CPU per function record of ``kind`` for each stage, and their sum."""
    bodies = function_batches(total, kind)
    with tempfile.TemporaryDirectory() as directory:
        exporter = build_exporter(exporter_name, sink_url, directory)
        pipeline = Pipeline([exporter], os.path.join(directory, "spool"), 64 * 1024 * 1024)
        listener = TelemetryListener(sink=pipeline.accept)
        store = listener._store
        # Warm-up: first-use costs (imports, encoders, file creation) are not per record.
        store(platform_batch())
        store(function_batches(RECORDS_PER_BATCH, kind)[0])
        pipeline.flush(60.0)
        stages = {"accept": 0.0, "decode": 0.0, "export": 0.0}
        for index, body in enumerate(bodies):
            stages["accept"] += timed(lambda body=body: store(body))  # type: ignore[misc]
            if index % 3 == 2:
                stages["accept"] += timed(lambda: store(platform_batch()))
            stages["decode"] += timed(pipeline._distribute)
            stages["export"] += timed(lambda: pipeline.flush(60.0))
    per_record = {stage: seconds / total * 1e6 for stage, seconds in stages.items()}
    per_record["total"] = sum(per_record.values())
    return per_record


def best_of(repeat: int, exporter_name: str, total: int, sink_url: str | None,
            kind: str = "text") -> dict[str, float]:
    """``measure`` ``repeat`` times; the run with the least total CPU."""
    runs = [measure(exporter_name, total, sink_url, kind) for _ in range(max(1, repeat))]
    return min(runs, key=lambda stages: stages["total"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30000)
    parser.add_argument("--exporters", default="file,emf,otlp")
    parser.add_argument("--lines", default=",".join(LINE_KINDS), help="kinds of function line: text, json")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the least total is kept")
    args = parser.parse_args(argv)
    names = args.exporters.split(",")
    kinds = args.lines.split(",")
    results: dict[tuple[str, str], dict[str, float]] = {}
    sink = None
    if "otlp" in names:
        from bench.sink import SinkProcess

        sink = SinkProcess()
    try:
        for name in names:
            for kind in kinds:
                with stdout_to_devnull():
                    results[name, kind] = best_of(args.repeat, name, args.records, sink.url if sink else None,
                                                  kind)
    finally:
        if sink is not None:
            sink.close()
    print(f"CPU per function record (us), {args.records} records in batches of {RECORDS_PER_BATCH}, "
          f"least total of {args.repeat} runs")
    print(f"{'exporter':10} {'lines':6} {'accept':>8} {'decode':>8} {'export':>8} {'total':>8}")
    for (name, kind), stages in results.items():
        figures = " ".join(f"{stages[stage]:8.2f}" for stage in ("accept", "decode", "export", "total"))
        print(f"{name:10} {kind:6} {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
