"""Per-invocation process metrics (psutil, getrusage, gc callbacks), exported with the invocation."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from function_runs import run_function
from lambda_wrapper.instruments import INVOCATION, peak_rss_bytes, reset_peak_rss, rss_bytes
from lambda_wrapper.instruments.process import GcWatch, ProcessMetrics

PROCESS_FIELDS = {
    "rssMB",
    "peakRssMB",
    "cpuUserMs",
    "cpuSystemMs",
    "openFds",
    "threads",
    "tmpUsedMB",
    "gcCollections",
    "gcPauseMs",
}
BUSY = {
    "app.py": """
        import gc
        import os
        import threading

        def handler(event, context):
            blob = [bytearray(1024 * 1024) for _ in range(event["mb"])]
            total = sum(i * i for i in range(event["loops"]))
            for _ in range(event["collections"]):
                gc.collect()
            with open("/tmp/scratch", "wb") as scratch:
                scratch.write(os.urandom(1024 * 1024))
            del blob
            return {"total": total, "threads": threading.active_count()}
    """
}


def test_gc_watch_counts_collections_and_pause() -> None:
    watch = GcWatch()
    try:
        watch.reset()
        for _ in range(3):
            gc.collect()
        assert watch.collections == 3
        assert watch.pause_s > 0
    finally:
        watch.close()
    assert watch._on_gc not in gc.callbacks


def test_snapshot_has_every_field_with_sane_values() -> None:
    metrics = ProcessMetrics()
    try:
        metrics.invocation_starts()
        sum(i * i for i in range(200_000))
        snapshot: dict[str, Any] = metrics.snapshot()
    finally:
        metrics.close()
    assert set(snapshot) == PROCESS_FIELDS
    assert snapshot["rssMB"] > 1 and snapshot["peakRssMB"] >= snapshot["rssMB"]
    assert snapshot["cpuUserMs"] > 0  # microsecond resolution, not 10 ms ticks
    assert snapshot["openFds"] >= 3 and snapshot["threads"] >= 1


def test_peak_rss_can_be_reset_per_invocation() -> None:
    rss = rss_bytes()
    assert rss is not None and rss > 0
    hold = bytearray(64 * 1024 * 1024)
    hold[::4096] = b"x" * len(hold[::4096])
    del hold
    peak_before = peak_rss_bytes()
    assert peak_before is not None
    if reset_peak_rss():
        peak_after = peak_rss_bytes()
        assert peak_after is not None and peak_after < peak_before


# -- end to end -------------------------------------------------------------------------


def test_process_metrics_are_exported_with_each_invocation(layer_dir: Path, tmp_path: Path) -> None:
    payloads = [b'{"mb": 40, "loops": 300000, "collections": 2}', b'{"mb": 1, "loops": 10, "collections": 0}']
    run = run_function(
        layer_dir,
        tmp_path,
        BUSY,
        memory_mb=256,
        payloads=payloads,
        env={"LAMBDA_WRAPPER_PROCESS_METRICS": "true"},
    )
    assert [r.status for r in run.results] == ["success", "success"], run.text()
    heavy, light = (invocation["process"] for invocation in run.records(INVOCATION))
    assert set(heavy) == set(light) == PROCESS_FIELDS
    assert heavy["peakRssMB"] >= heavy["rssMB"] + 30  # the 40 MB held during the handler
    assert light["peakRssMB"] < heavy["peakRssMB"] - 30  # the peak is per invocation
    assert heavy["cpuUserMs"] > light["cpuUserMs"]
    assert heavy["gcCollections"] >= 2 and heavy["gcPauseMs"] > 0
    assert light["gcCollections"] == 0
    # OS threads: the handler's, the extension's and the listener's at least.
    assert heavy["threads"] >= max(3, run.results[0].json()["threads"])
    assert heavy["openFds"] >= 3
    assert heavy["tmpUsedMB"] is not None and heavy["tmpUsedMB"] > 0
