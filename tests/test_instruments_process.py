"""Per-invocation process metrics (/proc, getrusage, gc callbacks; psutil as the reference),
exported with the invocation."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from function_runs import run_function
from lambda_wrapper.instruments import (
    INVOCATION,
    open_self_proc,
    process,
    reset_peak_rss,
    rss_bytes,
    self_status,
)
from lambda_wrapper.instruments.process import ProcessMetrics

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


def test_gc_collections_and_pause_are_counted_from_the_invocation_start() -> None:
    metrics = ProcessMetrics(None)
    try:
        gc.collect()  # before the invocation: not its
        metrics.invocation_starts()
        for _ in range(3):
            gc.collect()
        assert metrics.gc_collections == 3
        assert metrics.gc_pause_s > 0
    finally:
        metrics.close()
    assert metrics._on_gc not in gc.callbacks


def test_snapshot_has_every_field_with_sane_values() -> None:
    status, clear_refs = open_self_proc()
    metrics = ProcessMetrics(status)
    try:
        metrics.invocation_starts()
        sum(i * i for i in range(200_000))
        snapshot: dict[str, Any] = metrics.snapshot()
    finally:
        metrics.close()
        close_all(status, clear_refs)
    assert set(snapshot) == PROCESS_FIELDS
    assert snapshot["rssMB"] > 1 and snapshot["peakRssMB"] >= snapshot["rssMB"]
    assert snapshot["cpuUserMs"] > 0  # microsecond resolution, not 10 ms ticks
    assert snapshot["openFds"] >= 3 and snapshot["threads"] >= 1


def test_tmp_usage_is_psutils(tmp_path: Path) -> None:
    status, clear_refs = open_self_proc()
    metrics = ProcessMetrics(status, str(tmp_path))
    try:
        # Other processes write to the same file system: psutil's figure before and after.
        before = psutil.disk_usage(str(tmp_path)).used / 2**20
        used: Any = metrics.snapshot()["tmpUsedMB"]
        after = psutil.disk_usage(str(tmp_path)).used / 2**20
    finally:
        metrics.close()
        close_all(status, clear_refs)
    assert min(before, after) - 0.01 <= used <= max(before, after) + 0.01


def test_where_no_descriptor_can_be_kept_the_figures_come_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "_open_directory", lambda path: None)
    metrics = ProcessMetrics(None, str(tmp_path))
    try:
        with pytest.raises(OSError):  # no status: the supervisor reports the failure once
            metrics.snapshot()
    finally:
        metrics.close()
    status, clear_refs = open_self_proc()
    metrics = ProcessMetrics(status, str(tmp_path))
    try:
        snapshot: dict[str, Any] = metrics.snapshot()
        assert snapshot["openFds"] == psutil.Process().num_fds()
        assert snapshot["tmpUsedMB"] is not None and snapshot["tmpUsedMB"] > 0
    finally:
        metrics.close()
        close_all(status, clear_refs)


def test_open_descriptors_are_counted_as_psutil_counts_them_and_follow_opens() -> None:
    status, clear_refs = open_self_proc()
    metrics = ProcessMetrics(status)
    opened: list[int] = []
    try:
        before: Any = metrics.snapshot()["openFds"]
        assert before == psutil.Process().num_fds()
        opened = [os.open("/dev/null", os.O_RDONLY) for _ in range(5)]
        assert metrics.snapshot()["openFds"] == before + 5
    finally:
        metrics.close()
        close_all(status, clear_refs, *opened)


def test_peak_rss_can_be_reset_per_invocation() -> None:
    rss = rss_bytes()
    assert rss is not None and rss > 0
    status, clear_refs = open_self_proc()
    try:
        hold = bytearray(64 * 1024 * 1024)
        hold[::4096] = b"x" * len(hold[::4096])
        del hold
        before = self_status(status)
        assert before is not None
        if clear_refs is not None:
            # The same descriptor, written again, resets the peak every time.
            for _ in range(2):
                assert reset_peak_rss(clear_refs)
                after = self_status(status)
                assert after is not None and after[1] < before[1] - 32 * 1024 * 1024
                hold = bytearray(64 * 1024 * 1024)
                hold[::4096] = b"x" * len(hold[::4096])
                del hold
                before = self_status(status)
                assert before is not None and before[1] > after[1] + 32 * 1024 * 1024
    finally:
        close_all(status, clear_refs)


def test_status_read_again_through_one_descriptor_is_current() -> None:
    status, clear_refs = open_self_proc()
    try:
        first = self_status(status)
        hold = bytearray(32 * 1024 * 1024)
        hold[::4096] = b"x" * len(hold[::4096])
        done = threading.Event()
        thread = threading.Thread(target=done.wait, args=(5,))
        thread.start()
        second = self_status(status)
        done.set()
        thread.join()
        del hold
    finally:
        close_all(status, clear_refs)
    assert first is not None and second is not None
    assert second[0] >= first[0] + 24 * 1024 * 1024
    assert second[1] >= second[0]  # the peak covers the RSS read beside it
    assert second[2] == first[2] + 1  # threads


def close_all(*descriptors: int | None) -> None:
    for descriptor in descriptors:
        if descriptor is not None:
            os.close(descriptor)


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
