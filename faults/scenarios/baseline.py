"""The reference: the same function without the wrapper (no layer at all).

Its median duration is what "added ms per invocation" is measured against.
"""

from __future__ import annotations

import time

from ..context import Context
from ..harness import caller_view, describe_view, session
from ..model import Result, median


def run(ctx: Context) -> list[Result]:
    result = Result("reference: function without the wrapper", "baseline")
    started = time.monotonic()
    with session(ctx, "baseline", wrapper=False) as s:
        for index in range(ctx.form.baseline_invokes):
            s.invoke({"mark": f"baseline.{index}"})
        views = [caller_view(r) for r in s.results]
        # The cold invocation includes imports; the reference is a warm one.
        ctx.baseline_ms = median(s.durations(1))
    result.saw = f"{describe_view(views[0])} x{len(views)}"
    result.delivered = "n/a (no exporter)"
    result.lost = "n/a"
    result.added_ms = 0.0
    result.peak_mb = s.peak_mb
    result.notes.append(f"median warm duration {ctx.baseline_ms:.2f} ms")
    result.check("every invocation succeeded", all(v[:3] == (200, "success", None) for v in views))
    result.seconds = time.monotonic() - started
    return [result]
