"""Pipeline: decode once, skip our own lines, export in budget, breaker, spool."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from lambda_wrapper.export import GIL_YIELD_INTERVAL_S, LISTENER_TURN_S, Exporter, Pipeline
from lambda_wrapper.export.failures import ExportError
from lambda_wrapper.telemetry import TelemetryEvent


class Recorder(Exporter):
    name = "rec"
    local = False
    telemetry_types: tuple[str, ...] = ("platform", "function")

    def __init__(self, name: str = "rec", fail: ExportError | None = None, delay: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.delay = delay
        self.calls: list[list[TelemetryEvent]] = []

    def prepare(self) -> None:
        pass

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        if self.delay:
            time.sleep(min(self.delay, max(0.0, deadline - time.monotonic())))
        if self.fail is not None:
            raise self.fail
        self.calls.append(list(events))

    @property
    def records(self) -> list[object]:
        return [event.record for call in self.calls for event in call]


def body(*records: object, kind: str = "function") -> bytes:
    return json.dumps(
        [{"time": "2024-05-01T10:00:00.000Z", "type": kind, "record": r} for r in records]
    ).encode()


def test_own_lines_are_skipped_user_emf_kept(tmp_path: Path) -> None:
    exporter = Recorder()
    pipeline = Pipeline([exporter], str(tmp_path), 1 << 20, emf_namespaces={"LambdaWrapper"})
    ours = json.dumps({"logger": "lambda_wrapper", "event": "x"})
    our_emf = json.dumps({"_aws": {"CloudWatchMetrics": [{"Namespace": "LambdaWrapper"}]}})
    user_emf = json.dumps({"_aws": {"CloudWatchMetrics": [{"Namespace": "Shop"}]}})
    structured_ours = {"logger": "lambda_wrapper.extension", "event": "x"}  # the JSON log format's
    # Indented by ASCII or other blanks, still ours; behind any other character, not.
    pipeline.accept(body("hello\n", ours + "\n", our_emf + "\n", user_emf + "\n", "  " + ours,
                         "\u2003" + ours, structured_ours, {"logger": "app"}, "\x00" + ours, "~" + ours))
    assert pipeline.flush(1.0) == 5
    assert exporter.records == ["hello\n", user_emf + "\n", {"logger": "app"}, "\x00" + ours, "~" + ours]
    assert pipeline.stats.own_lines_skipped == 5 and pipeline.stats.events == 5


def test_malformed_batch_counted_and_skipped(tmp_path: Path) -> None:
    exporter = Recorder()
    pipeline = Pipeline([exporter], str(tmp_path), 1 << 20)
    pipeline.accept(b"{not json")
    pipeline.accept(b'[{"time": "t"}, 5]')
    pipeline.accept(body("ok"))
    pipeline.flush(1.0)
    assert exporter.records == ["ok"]
    assert pipeline.stats.malformed_batches == 1 and pipeline.stats.malformed_entries == 2


class PlatformOnly(Recorder):
    """Reads no log line, like the EMF exporter."""

    telemetry_types: tuple[str, ...] = ("platform",)


def compact(*entries: tuple[str, object]) -> bytes:
    """A body as the platform posts it: compact JSON."""
    items = [{"time": "2024-05-01T10:00:00.000Z", "type": kind, "record": record} for kind, record in entries]
    return json.dumps(items, separators=(",", ":")).encode()


def test_log_records_no_exporter_reads_are_counted_not_decoded(tmp_path: Path) -> None:
    exporter = PlatformOnly()
    pipeline = Pipeline([exporter], str(tmp_path), 1 << 20)
    assert pipeline.unread_types == {"function", "extension"}
    pipeline.accept(compact(("function", "a\n"), ("extension", "b\n"), ("function", {"message": "c"})))
    pipeline.flush(1.0)
    assert exporter.calls == [] and pipeline.stats.unread_records == 3 and pipeline.stats.events == 0
    assert pipeline.channels[0].spool.cursor == 1  # delivered: nothing of it was owed


def test_records_that_are_read_are_never_skipped_with_the_unread(tmp_path: Path) -> None:
    exporter = PlatformOnly()
    pipeline = Pipeline([exporter], str(tmp_path), 1 << 20)
    start = {"requestId": "r1"}
    # A JSON log line with its own "type" keys, one saying "function"; the platform's
    # record with other spacing; a text line quoting a platform record.
    pipeline.accept(compact(("function", {"type": "function"}), ("platform.start", start),
                            ("function", {"type": "platform.start"})))
    pipeline.accept(json.dumps([{"time": "2024-05-01T10:00:00.000Z", "type": "platform.start",
                                 "record": {"requestId": "r2"}}]).encode())
    pipeline.accept(compact(("function", '{"type":"platform.start"}'),
                            ("platform.start", {"requestId": "r3"})))
    pipeline.flush(1.0)
    assert [event.request_id for call in exporter.calls for event in call] == ["r1", "r2", "r3"]
    assert pipeline.stats.unread_records == 3


def test_an_exporter_that_reads_log_lines_gets_them_all(tmp_path: Path) -> None:
    reader, platform_only = Recorder("rec"), PlatformOnly("emf")
    pipeline = Pipeline([reader, platform_only], str(tmp_path), 1 << 20)
    assert pipeline.unread_types == {"extension"}
    pipeline.accept(compact(("function", "a\n"), ("extension", "b\n"),
                            ("platform.start", {"requestId": "r"})))
    pipeline.flush(1.0)
    # The exporter that reads no log line gets (and spools) the platform's records only.
    assert reader.records == ["a\n", {"requestId": "r"}] and platform_only.records == [{"requestId": "r"}]
    assert pipeline.stats.unread_records == 1


def test_retryable_failure_keeps_data_opens_breaker_then_delivers(tmp_path: Path) -> None:
    failing = Recorder("net", fail=ExportError("connection refused", retryable=True))
    healthy = Recorder("file")
    pipeline = Pipeline([healthy, failing], str(tmp_path), 1 << 20)
    assert [channel.breaker for channel in pipeline.channels] == [None, None]  # made by a failure only
    pipeline.accept(body("a"))
    pipeline.flush(1.0)
    assert healthy.records == ["a"] and failing.calls == []
    channel = pipeline.channels[1]
    breaker = channel.breaker
    assert breaker is not None and breaker.failures == 1 and not breaker.allows()
    assert pipeline.channels[0].breaker is None
    pipeline.accept(body("b"))
    pipeline.flush(1.0)  # breaker open: not even tried
    assert healthy.records == ["a", "b"]
    failing.fail = None
    breaker.open_until = 0.0
    pipeline.flush(1.0)
    assert failing.records == ["a", "b"]  # spooled while down, delivered in order after recovery
    assert healthy.records == ["a", "b"]  # never re-sent to the healthy exporter
    assert channel.breaker is None  # closed by the success: the next failure starts over


def test_consecutive_failures_lengthen_the_cool_down_until_a_success(tmp_path: Path) -> None:
    failing = Recorder("net", fail=ExportError("connection refused", retryable=True))
    pipeline = Pipeline([failing], str(tmp_path), 1 << 20)
    channel = pipeline.channels[0]
    cool_downs = []
    for attempt in range(3):
        pipeline.accept(body(str(attempt)))
        pipeline.flush(1.0)
        assert channel.breaker is not None
        cool_downs.append(channel.breaker.open_until - time.monotonic())
        channel.breaker.open_until = 0.0  # skip the cool-down
    assert [round(cool_down) for cool_down in cool_downs] == [1, 2, 4]
    failing.fail = None
    pipeline.flush(1.0)
    assert channel.breaker is None and failing.records == ["0", "1", "2"]
    failing.fail = ExportError("connection refused", retryable=True)
    pipeline.accept(body("3"))
    pipeline.flush(1.0)
    assert channel.breaker is not None and round(channel.breaker.open_until - time.monotonic()) == 1


def test_permanent_failure_is_counted_not_retried(tmp_path: Path) -> None:
    rejecting = Recorder("net", fail=ExportError("HTTP 400", retryable=False))
    pipeline = Pipeline([rejecting], str(tmp_path), 1 << 20)
    pipeline.accept(body("a", "b"))
    pipeline.flush(1.0)
    assert pipeline.stats.rejected_events == 2
    rejecting.fail = None
    pipeline.flush(1.0)
    assert rejecting.calls == []


def test_flush_respects_budget(tmp_path: Path) -> None:
    slow = Recorder("slow", delay=5.0, fail=ExportError("timed out", retryable=True))
    pipeline = Pipeline([slow], str(tmp_path), 1 << 20)
    pipeline.accept(body("a"))
    started = time.monotonic()
    pipeline.flush(0.1)
    assert time.monotonic() - started < 0.3


def test_a_flush_of_many_small_batches_yields_the_gil_by_time_not_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A yield costs a system call, as much CPU as decoding a small batch: paid per batch,
    a flush of hundreds of small batches at 7 % of a CPU outlasts the SIGTERM window.
    The listener still gets the GIL during a long flush."""
    exporter = Recorder()
    pipeline = Pipeline([exporter], str(tmp_path), 1 << 24)
    batches = 2000
    for n in range(batches):
        pipeline.accept(body(f"line {n}"))
    yields: list[float] = []
    sleep = time.sleep

    def counted_sleep(seconds: float) -> None:
        if seconds in (0, LISTENER_TURN_S):  # at a shutdown, and otherwise
            yields.append(time.monotonic())
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", counted_sleep)
    started = time.monotonic()
    assert pipeline.flush(5.0) == batches
    took = time.monotonic() - started
    assert len(exporter.records) == batches
    assert 1 <= len(yields) <= took / GIL_YIELD_INTERVAL_S + 1, f"{len(yields)} yields, {took * 1000:.1f} ms"


def test_submitted_records_and_recovery_after_crash(tmp_path: Path) -> None:
    first = Pipeline([Recorder("file")], str(tmp_path), 1 << 20)
    first.submit(TelemetryEvent("2024-05-01T10:00:00.000Z", "lambda_wrapper.invocation", {"requestId": "r1"}))
    first.submit(TelemetryEvent("2024-05-01T10:00:00.000Z", "lambda_wrapper.init", {"initDurationMs": 1.0},
                                request_id="r1"))
    first.spool_own()  # the extension thread, once the handler is done
    # Simulate a dead previous process: its spool directory is renamed to a dead pid.
    spool_dir = Path(first.channels[0].spool.directory)
    spool_dir.rename(spool_dir.with_name("999999-1"))
    exporter = Recorder("file")
    second = Pipeline([exporter], str(tmp_path), 1 << 20)
    assert second.recover() == 1
    second.flush(1.0)
    assert exporter.records == [{"requestId": "r1"}, {"initDurationMs": 1.0}]
    assert [event.request_id for call in exporter.calls for event in call] == ["r1", "r1"]
