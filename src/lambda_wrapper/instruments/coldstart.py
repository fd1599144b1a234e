"""Cold start, proactive initialisation, and where the Init time went.

``coldStart`` is true on the first invocation of each environment, unless the
environment was initialised ahead of traffic:

- provisioned concurrency and Lambda Managed Instances initialise before any
  request is routed to them;
- Lambda also initialises on-demand environments proactively. Like Datadog, we call
  an Init that ended more than 10 s before the first invocation proactive: no caller
  waited for it.

SnapStart restores are cold starts (the restore is on the caller's path), even
though our own Init ran long before, when the snapshot was taken.

The breakdown splits Init into the wrapper script (from its two ``$EPOCHREALTIME``
stamps; absent where the shell has no such clock), the interpreter and runtime
start-up before our first line (``runtimeStartMs``), our own work (settings,
extension, instruments: ``extensionInitMs``) and the import of the user's handler.
"""

from __future__ import annotations

import time

from .. import aws, handover
from . import procfs
from .records import mib, ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

PROACTIVE_INIT_GAP_S = 10.0
INITIALISED_AHEAD = (aws.PROVISIONED_CONCURRENCY, aws.MANAGED_INSTANCES)


class InitTimeline:
    """Timestamps of the Init phase: ``perf_counter`` for durations, wall clock for gaps."""

    def __init__(
        self, started_perf: float, environ: Mapping[str, str] | None = None, init_type: str | None = None
    ) -> None:
        environ = environ or {}
        self.init_type = init_type or aws.ON_DEMAND
        self.wrapper_started = _epoch_seconds(environ.get(handover.STARTED_AT))
        self.wrapper_exec = _epoch_seconds(environ.get(handover.EXEC_AT))
        self.started_perf = started_perf
        self.started_wall = time.time() - (time.perf_counter() - started_perf)
        self.rss_at_start = procfs.rss_bytes()
        self.rss_before_handler: int | None = None
        self.handler_import_started = 0.0
        self.handler_import_ended = 0.0
        self.ended_perf = 0.0
        self.ended_wall = 0.0

    def handler_import_starts(self) -> None:
        self.rss_before_handler = procfs.rss_bytes()
        self.handler_import_started = time.perf_counter()

    def handler_import_ends(self) -> None:
        self.handler_import_ended = time.perf_counter()

    def init_ends(self) -> None:
        self.ended_perf = time.perf_counter()
        self.ended_wall = time.time()

    def record(self, cold_start: bool, proactive_init: bool) -> dict[str, object]:
        """The ``lambda_wrapper.init`` record."""
        handler_import = self.handler_import_ended - self.handler_import_started
        own = (self.ended_perf - self.started_perf) - handler_import
        wrapper_ms = runtime_start_ms = None
        if self.wrapper_started is not None and self.wrapper_exec is not None:
            wrapper_ms = ms(max(0.0, self.wrapper_exec - self.wrapper_started))
            runtime_start_ms = ms(max(0.0, self.started_wall - self.wrapper_exec))
        own_rss = None
        if self.rss_at_start is not None and self.rss_before_handler is not None:
            own_rss = mib(max(0, self.rss_before_handler - self.rss_at_start))
        return {
            "wrapperInitMs": wrapper_ms,
            "runtimeStartMs": runtime_start_ms,
            "extensionInitMs": ms(own),
            "handlerImportMs": ms(handler_import),
            "wrapperRssMB": own_rss,
            "coldStart": cold_start,
            "proactiveInit": proactive_init,
            "initType": self.init_type,
        }


class ColdStartTracker:
    """Answers, once per invocation, whether it was a cold start."""

    def __init__(self, timeline: InitTimeline) -> None:
        self.timeline = timeline
        self.invocations = 0
        self.cold_start = False
        self.proactive_init = False

    def invocation_starts(self, now_wall: float) -> None:
        self.invocations += 1
        if self.invocations == 1:
            self.cold_start, self.proactive_init = classify_first_invocation(
                self.timeline.init_type, now_wall - self.timeline.ended_wall
            )
        else:
            self.cold_start = self.proactive_init = False

    @property
    def first(self) -> bool:
        return self.invocations == 1


def classify_first_invocation(init_type: str, gap_s: float) -> tuple[bool, bool]:
    """(cold start, proactive init) for the first invocation of an environment."""
    if init_type in INITIALISED_AHEAD:
        return False, True
    if init_type == aws.SNAP_START:
        return True, False
    if gap_s > PROACTIVE_INIT_GAP_S:
        return False, True
    return True, False


def _epoch_seconds(raw: str | None) -> float | None:
    # bash prints $EPOCHREALTIME with the locale's decimal separator.
    if not raw:
        return None
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return None
