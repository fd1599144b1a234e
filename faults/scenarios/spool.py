"""Spool full: the endpoint is down while the function logs far more than the spool cap.

The cap is the smallest accepted (64 KiB). With the endpoint refusing, everything
piles up in the spool; past the cap the oldest batches must go, counted
(``spool_overflow`` / ``droppedRecords``), and the spool must never take more disk
than the cap. Then the endpoint recovers and what was kept must arrive.

Three shapes: many small batches to one exporter; the same to two exporters (the
cap is for the whole spool, shared between exporters); and one batch larger than
the cap (dense invocations: the platform sends their lines in one batch).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..context import Context
from ..harness import (
    DiskWatcher,
    caller_view,
    counted_drops,
    diagnostics,
    fills,
    session,
    spool_root,
    tree_bytes,
    undelivered_in_spool,
)
from ..model import Result
from ..servers import Endpoint

CAP = 65536
LINES = 60  # ~200 bytes each: ~15 KB of telemetry per invocation
# Longer than the subscription's 100 ms buffering: each invocation is its own batch.
BATCH_SLEEP_S = 0.15
GAP_S = 1.05
BATCH_ALLOWANCE = 20 * 1024  # one batch of LINES lines, with its envelope
PREFIXES = {"otlp": "/v1/logs", "http": "/http"}


@dataclass(frozen=True)
class Shape:
    title: str
    exporters: tuple[str, ...]
    small_batches: bool


SHAPES = (
    Shape("spool full: cap 64 KiB, http down, small batches", ("http",), True),
    Shape("spool full: cap 64 KiB, otlp+http down, small batches", ("otlp", "http"), True),
    Shape("spool full: cap 64 KiB, http down, one batch over the cap", ("http",), False),
)


def run(ctx: Context) -> list[Result]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda shape: _scenario(ctx, shape), SHAPES))


def _scenario(ctx: Context, shape: Shape) -> Result:
    result = Result(shape.title, "spool")
    started = time.monotonic()
    tag = "-".join(shape.exporters) + ("-small" if shape.small_batches else "-big")
    endpoint = Endpoint(f"spool-{tag}", ctx.canaries.values())
    endpoint.set_mode("refuse")
    env = {
        "LAMBDA_WRAPPER_EXPORTERS": ",".join(shape.exporters),
        "LAMBDA_WRAPPER_SPOOL_MAX_BYTES": str(CAP),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.url(),
        "LAMBDA_WRAPPER_HTTP_ENDPOINT": endpoint.url(path="/http"),
    }
    sent: list[str] = []  # filler line ids, oldest first
    disk: list[int] = []
    recovered = False
    invocations = ctx.form.spool_invokes if shape.small_batches else 12
    try:
        with session(ctx, result.scenario, env=env) as s, DiskWatcher(spool_root(s.tmp_dir)) as watcher:
            for index in range(invocations):
                mark = f"{tag}.fill{index:03d}"
                s.invoke({"mark": mark, "lines": LINES, "sleep": BATCH_SLEEP_S if shape.small_batches else 0})
                sent.extend(f"{mark}-{line}" for line in range(LINES))
                disk.append(tree_bytes(spool_root(s.tmp_dir)))
            endpoint.set_mode("ok")
            until = time.monotonic() + ctx.form.recovery_timeout_s
            after: list[str] = []
            while time.monotonic() < until and not recovered:
                time.sleep(GAP_S)
                after.append(f"{tag}.after{len(after)}")
                s.invoke({"mark": after[-1]})
                disk.append(tree_bytes(spool_root(s.tmp_dir)))
                # A marker shows up one flush after its invocation (platform batching).
                recovered = len(after) >= 2 and all(
                    after[-2] in endpoint.delivered(PREFIXES[e]) for e in shape.exporters
                )
            views = [caller_view(r) for r in s.results]
            peak = s.peak_mb
    finally:
        endpoint.close()
        ctx.absorb(endpoint)
    disk.append(watcher.peak)  # the peak seen between the samples, too
    _judge(result, shape, endpoint, sent, disk, recovered, diagnostics(s.sandbox.function_output), s.tmp_dir)
    ok = all(v[:3] == (200, "success", None) for v in views)
    result.saw = f"200 success x{len(views)}" if ok else "see notes"
    result.check("every invocation succeeded", ok)
    result.peak_mb = peak
    result.seconds = time.monotonic() - started
    return result


def _judge(
    result: Result,
    shape: Shape,
    endpoint: Endpoint,
    sent: list[str],
    disk: list[int],
    recovered: bool,
    diags: list[dict],
    tmp_dir: object,
) -> None:
    settled, polled = disk[:-1], disk[-1]
    result.check(
        f"spool never above the cap ({CAP} B) between invocations: peak {max(settled)} B", max(settled) <= CAP
    )
    # The spool writes a batch, then drops the oldest: for that moment it holds one
    # batch more than the cap (the poller sees it only when the CPU throttle stretches
    # the moment). Anything beyond one batch is a real excess.
    result.check(
        f"at most one batch over the cap while appending: polled peak {polled} B (cap + {BATCH_ALLOWANCE} B)",
        polled <= CAP + BATCH_ALLOWANCE,
    )
    result.notes.append(f"spool bytes after each invocation, then the polled peak: {disk}")
    result.check("the endpoint recovered", recovered)
    delivered_text, lost_text = [], []
    for exporter in shape.exporters:
        delivered = set(sent) & endpoint.delivered_fills(PREFIXES[exporter])
        pending: set[str] = set()
        for body in undelivered_in_spool(tmp_dir, exporter):  # type: ignore[arg-type]
            pending |= fills(body)
        kept = [i for i, line in enumerate(sent) if line in delivered or line in pending]
        dropped = [i for i, line in enumerate(sent) if line not in delivered and line not in pending]
        counted = counted_drops(diags, exporter, "function")
        delivered_text.append(f"{exporter} {len(delivered)}/{len(sent)} lines")
        lost_text.append(f"{exporter} {len(dropped)} ({counted} function records counted)")
        # A batch bigger than the whole cap is kept in memory, not dropped (and reported
        # as spool_batch_too_large); then nothing may be lost at all.
        overflow = counted_drops(diags, exporter, "function", at_shutdown=False)
        result.check(f"{exporter}: the overflow dropped and reported something, or lost nothing",
                     overflow > 0 or not dropped)
        result.check(
            f"{exporter}: every lost line was counted as a dropped function record", len(dropped) <= counted
        )
        oldest_first = not dropped or not kept or max(dropped) < min(kept)
        result.check(f"{exporter}: the oldest lines were the ones dropped", oldest_first)
    result.delivered = ", ".join(delivered_text)
    result.lost = ", ".join(lost_text)
