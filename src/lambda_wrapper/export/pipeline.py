"""From raw Telemetry API bodies to exporters: spool, decode, filter, export in budget.

- ``accept`` (listener thread, and call spans) only appends bytes to each
  exporter's spool and to an in-memory queue: no parsing on the caller's time.
- ``submit`` (the supervisor's own records, on the handler's thread) only queues the
  ``TelemetryEvent`` itself: no serialisation, no write. ``spool_own`` serialises
  what was queued into the spools, on the listener's thread when the platform's next
  batch arrives (``receive``) and at the start of every flush; the objects themselves
  go to the exporters, never decoded. Without Telemetry API batches, a record is
  durable from the next flush on (each invocation when traffic is sparse, at most
  ``FlushPolicy``'s interval when it is dense).
- ``flush`` (extension thread) decodes each batch once, skips the toolkit's own
  lines (they come back as ``function`` records), and gives every exporter whose
  circuit breaker is closed what it has not delivered yet, within one time budget.
  What does not make it stays in the spool for the next flush or the next Init.
- Log records of a type no exporter reads (``Exporter.telemetry_types``: EMF reads
  no ``function`` record) are counted, never turned into events; a batch holding
  nothing else is not even parsed.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time

from .. import diagnostics
from ..instruments.records import LOSS, own_event
from ..telemetry.decode import UnreadableBatch, decode_batch
from .breaker import CircuitBreaker
from .errors import ExportError
from .spool import Spool, count_records

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence

    from ..instruments.self_report import SourceArbiter
    from ..telemetry.records import TelemetryEvent
    from .exporter import Exporter

    Amend = Callable[[list[TelemetryEvent]], None]

# A local export call cannot be interrupted: at 128 MB (7 % of a CPU) 500 file records
# take ~50 ms of wall time, short enough for a flush to stop before the SIGKILL.
MAX_LOCAL_EVENTS_PER_CALL = 500
# Remote payloads stay small, because the peak memory of encoding one is what RSS
# keeps afterwards (about 2.8 KB of small objects per event). Catching up then takes
# more, smaller requests.
MAX_REMOTE_EVENTS_PER_CALL = 250
MIN_EVENTS_PER_CALL = 50
# Decoded events a remote exporter may owe before the oldest are dropped (and counted).
# A backlog grows when an endpoint is down or the function's CPU share is too small to
# keep up, and the toolkit's memory must stay bounded whatever the backend does: past
# the cap the oldest go, counted. The spool keeps its own, separate cap on disk.
MAX_BACKLOG_EVENTS = 2000
# Bytes of acknowledged bodies that no exporter has delivered yet (held in memory
# raw or decoded, on top of the spool on disk). Past it the listener refuses the
# batch, so the platform drops and counts it (platform.logsDropped).
MAX_HELD_BYTES = 4 * 1024 * 1024
# What a remote exporter may spend telling its destination about a loss.
LOSS_REPORT_BUDGET_S = 0.1
# What writing the loss report takes at 128 MB (7 % of a CPU): one stderr line, one
# file line, one EMF document.
LOSS_REPORT_TIME_S = 0.04
# How often a flush waiting for the lock checks whether its holder is still alive.
ORPHAN_CHECK_S = 0.05
# A flush hands the GIL to the listener between batches at most this often: a yield
# costs a system call, as much CPU as decoding a small batch, and the SIGTERM window
# must hold the rest of a flush of many small batches at 7 % of a CPU.
GIL_YIELD_INTERVAL_S = 0.001
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
_FUNCTION_TYPE_MARKS = (b'"type":"function"', b'"type": "function"')
_TYPE_KEY = b'"type"'
# The Telemetry API types whose records are log lines, the ones worth not decoding.
_LOG_TYPES = ("function", "extension")


class PipelineFull(OSError):
    """The held bytes reached their cap, or the pipeline stopped accepting (shutdown)."""


def count_function_records(body: bytes) -> int:
    """``function`` events in a raw body, without parsing it (for loss counts by type)."""
    return sum(body.count(mark) for mark in _FUNCTION_TYPE_MARKS)


def amended(events: list[TelemetryEvent], amends: list[Amend | None]) -> list[TelemetryEvent]:
    """``events`` with each one's amendment applied to a list of its own (it may add to it)."""
    if not any(amends):
        return list(events)
    out: list[TelemetryEvent] = []
    for event, amend in zip(events, amends, strict=True):
        one = [event]
        if amend is not None:
            amend(one)
        out.extend(one)
    return out


def count_by_type(events: Iterable[TelemetryEvent], into: dict[str, int] | None = None) -> dict[str, int]:
    """Events per ``type`` (``function``, ``platform.report``...), added to ``into``.

    Every drop is reported by type as well as in total, so that lost log lines can be
    matched with counted log lines rather than with any events that happened to go.
    """
    counts = {} if into is None else into
    for event in events:
        counts[event.type] = counts.get(event.type, 0) + 1
    return counts


class PipelineStats:
    __slots__ = ("delivered", "events", "export_failures", "malformed_batches", "malformed_entries",
                 "own_lines_skipped", "rejected_events", "unread_records")

    def __init__(self) -> None:
        self.events = 0
        self.delivered = 0
        self.malformed_batches = 0
        self.malformed_entries = 0
        self.own_lines_skipped = 0
        self.unread_records = 0  # of a type no exporter reads: not decoded
        self.export_failures = 0
        self.rejected_events = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Channel:
    """One exporter with its spool, breaker and the decoded batches it still owes."""

    def __init__(self, exporter: Exporter, spool: Spool) -> None:
        self.exporter = exporter
        self.spool = spool
        self.breaker = CircuitBreaker()
        self.pending: collections.deque[tuple[int, list[TelemetryEvent]]] = collections.deque()
        self.reported_drops = 0
        self.reported_drop_bytes = 0
        # Events of the batches the spool dropped on overflow, per type (a running total).
        self.overflow_by_type: dict[str, int] = {}
        self.reported_overflow_events = 0
        self.reported_unspooled = 0
        self.local = exporter.local
        # (spool seq, body bytes, records, function records) of each batch not yet
        # delivered: what the held-bytes cap and a loss count read.
        self.held: collections.deque[tuple[int, int, int, int]] = collections.deque()
        self.held_bytes = 0
        # (spool seq, records, function records) already delivered of the batch at the
        # head of ``pending`` when it goes out in parts: a loss count leaves them out.
        self.partial: tuple[int, int, int] | None = None
        # A remote call must fit the flush budget even at 128 MB (7 % of a CPU), or
        # every call fails and the backlog only grows: its size adapts, halved when a
        # call runs out of time, doubled on success.
        self.call_limit = MAX_LOCAL_EVENTS_PER_CALL if self.local else MIN_EVENTS_PER_CALL * 4

    @property
    def name(self) -> str:
        return self.exporter.name


class Pipeline:
    def __init__(self, exporters: Sequence[Exporter], spool_root: str, spool_max_bytes: int,
                 emf_namespaces: Collection[str] = (), max_held_bytes: int = MAX_HELD_BYTES) -> None:
        # The cap is for all exporters together: each spool gets its share.
        share = spool_max_bytes // max(1, len(exporters))
        self.channels = [Channel(e, Spool(os.path.join(spool_root, e.name), share)) for e in exporters]
        self.stats = PipelineStats()
        read = {kind for exporter in exporters for kind in exporter.telemetry_types}
        self.unread_types = frozenset(kind for kind in _LOG_TYPES if kind not in read)
        self._unread_marks = tuple(b'"type":"%s"' % kind.encode() for kind in sorted(self.unread_types))
        # Only our own EMF lines are skipped; the user's EMF metrics are their logs.
        self.emf_namespaces = set(emf_namespaces)
        # (body, spool sequence numbers, arrival time, own events or None for a body to
        # decode, what to amend in each own event)
        self._incoming: collections.deque[
            tuple[bytes, list[int], float, list[TelemetryEvent] | None, list[Amend | None]]
        ] = collections.deque()
        # Own records submitted and not yet spooled (appended and taken without a lock:
        # deque's append and popleft are atomic).
        self._own: collections.deque[tuple[TelemetryEvent, Amend | None]] = collections.deque()
        # Platform event time to our receipt, for the newest batch: the listener's lag.
        self.listener_lag_ms: float | None = None
        self._flush_lock = threading.Lock()  # the loop thread and the SIGTERM path may both flush
        self._flush_owner: threading.Thread | None = None
        self.unflushed_bytes = 0  # received since the last complete flush (a volume signal)
        self.max_held_bytes = max_held_bytes
        self.refused_batches = 0
        self.late_records = 0  # records of batches that arrived after ``give_up``
        self._held_lock = threading.Lock()  # producers append, the flushing thread trims
        self._accepting = True
        # Set by ``give_up``: batches arriving after it are taken and counted as lost
        # rather than refused, since a refused batch's platform.logsDropped could only
        # come back to this same listener; ``_loss_deadline`` bounds reporting them.
        self._loss_reason: str | None = None
        self._loss_deadline = float("inf")
        # No flush works past this monotonic time (set at SIGTERM): what is not
        # delivered by then is counted as lost while the process still lives.
        self._finish_by = float("inf")
        # Which source reports each invocation (instruments.self_report.SourceArbiter),
        # when the supervisor reports invocations itself.
        self.arbiter: SourceArbiter | None = None

    # -- producers ------------------------------------------------------------------
    def accept(self, body: bytes) -> None:
        """Store one batch durably; called on the listener thread before it answers.

        Raises ``PipelineFull`` when the batch would take the bytes held for the
        exporters past their cap: the listener then refuses the batch and the platform
        counts it as dropped. After ``give_up`` the batch is taken and counted as lost.
        """
        with self._held_lock:
            if self._loss_reason is not None:
                late = True
            elif not self._accepting or self._held_locked() + len(body) > self.max_held_bytes:
                self.refused_batches += 1
                raise PipelineFull("telemetry pipeline is full" if self._accepting else "shutting down")
            else:
                late = False
                self._store(body, None, [])
        if late:
            self._count_late(body)

    def receive(self, body: bytes) -> None:
        """``accept`` for the Telemetry API listener: the platform's batch, after the own
        records submitted before it are spooled.

        The platform posts an invocation's ``platform.runtimeDone`` once the runtime has
        sent the response, so our records of that invocation are serialised and made
        durable here, on the listener's thread, while the handler's thread waits for the
        next event: off the handler's path, without waking another thread for it.
        """
        if self._own and self._loss_reason is None:
            self.spool_own()
        self.accept(body)

    def submit(self, event: TelemetryEvent, amend: Amend | None = None) -> None:
        """Queue one of the toolkit's own records, as it is; it goes out with the next flush.

        Nothing is serialised or written here (the handler's thread): ``spool_own``
        does that off the handler's path. ``amend``, if given, runs on a list holding
        just this event, which it may change or extend, before any exporter sees it
        (the spooled copy keeps the record as submitted).
        """
        self._own.append((event, amend))

    def spool_own(self) -> None:
        """Serialise the own records submitted so far into every spool, as one batch."""
        own = self._own
        events: list[TelemetryEvent] = []
        amends: list[Amend | None] = []
        while own:
            try:
                event, amend = own.popleft()
            except IndexError:  # another thread took the last one
                break
            events.append(event)
            amends.append(amend)
        if not events:
            return
        body = _ENCODER.encode([event.to_output() for event in events]).encode()
        with self._held_lock:
            self._store(body, events, amends)

    def _store(self, body: bytes, events: list[TelemetryEvent] | None, amends: list[Amend | None]) -> None:
        seqs = [channel.spool.append(body) for channel in self.channels]
        size, records, functions = len(body), count_records(body), count_function_records(body)
        for channel, seq in zip(self.channels, seqs, strict=True):
            channel.held.append((seq, size, records, functions))
            channel.held_bytes += size
        self._incoming.append((body, seqs, time.time(), events, amends))
        self.unflushed_bytes += len(body)

    def held_bytes(self) -> int:
        """Bytes received but not yet delivered by the exporter furthest behind."""
        with self._held_lock:
            return self._held_locked()

    def held_records(self) -> int:
        """Records received but not yet delivered by the exporter furthest behind."""
        with self._held_lock:
            self._held_locked()
            return max((sum(entry[2] for entry in channel.held) for channel in self.channels), default=0)

    def _held_locked(self) -> int:
        held = 0
        for channel in self.channels:
            cursor = channel.spool.cursor
            while channel.held and channel.held[0][0] <= cursor:
                channel.held_bytes -= channel.held.popleft()[1]
            held = max(held, channel.held_bytes)
        return held

    def recover(self) -> int:
        """Take over what dead processes left in the spool; returns the batch count."""
        count = 0
        for channel in self.channels:
            for seq, body in channel.spool.recover_orphans():
                with self._held_lock:
                    channel.held.append((seq, len(body), count_records(body), count_function_records(body)))
                    channel.held_bytes += len(body)
                channel.pending.append((seq, self._decode(body, recovered=True)))
                count += 1
        return count

    @property
    def pending_batches(self) -> int:
        return len(self._own) + len(self._incoming) + max((len(c.pending) for c in self.channels), default=0)

    # -- the flush ------------------------------------------------------------------
    def flush(self, budget_s: float) -> int:
        """Export what is pending; returns events delivered.

        The budget bounds what remote exporters may cost (an outage must cost the
        function bounded time). Local exporters (stdout, a file) always take
        everything: their cost is the CPU of the data itself, and leaving it for later
        only grows the backlog that must fit in the 500 ms of a shutdown.
        """
        if not self._acquire_flush_lock(min(self._finish_by, time.monotonic() + budget_s)):
            return 0  # another flush holds it past this one's budget; what is pending waits
        try:
            deadline = min(time.monotonic() + budget_s, self._finish_by)
            local = [channel for channel in self.channels if channel.local]
            delivered = 0
            # Decoded and exported in rounds of one local export call: a flush that
            # meets the stop point (SIGTERM) has delivered the oldest batches and
            # leaves only the newest to be counted as lost, instead of having spent
            # the window decoding with nothing exported.
            more = True
            while more:
                more = self._distribute(MAX_LOCAL_EVENTS_PER_CALL if local else None)
                for channel in local:
                    delivered += self._flush_channel(channel, self._finish_by)
            for channel in self.channels:
                if not channel.local and time.monotonic() < deadline:
                    delivered += self._flush_channel(channel, deadline)
            self._report_drops()
            if not any(channel.pending for channel in self.channels):
                self.unflushed_bytes = 0
            return delivered
        finally:
            self._release_flush_lock()

    def _acquire_flush_lock(self, until: float) -> bool:
        """Take the flush lock by ``until``. A lock whose holder died (our threads can be
        killed, e.g. by an exception injected from the function) is taken over rather
        than waited for forever: the event loop flushes before its /event/next, so a
        wait without end would hold the invocation until its timeout."""
        lock = self._flush_lock
        while True:
            timeout = -1.0 if until == float("inf") else max(0.0, until - time.monotonic())
            if lock.acquire(timeout=min(timeout, ORPHAN_CHECK_S) if timeout >= 0 else ORPHAN_CHECK_S):
                self._flush_owner = threading.current_thread()
                return True
            owner = self._flush_owner
            if owner is not None and not owner.is_alive():
                self._flush_owner = None
                try:
                    lock.release()  # a plain Lock: any thread may release it
                except RuntimeError:
                    pass  # released meanwhile
                continue
            if timeout >= 0 and time.monotonic() >= until:
                return False

    def _release_flush_lock(self) -> None:
        self._flush_owner = None
        self._flush_lock.release()

    def _distribute(self, max_events: int | None = None) -> bool:
        """Decode received batches into every channel's ``pending``, stopping once
        ``max_events`` were added; True when it stopped there with more to decode."""
        if self._distribute_batches(max_events):
            return True
        arbiter = self.arbiter
        if arbiter is not None:
            # Every batch received so far is decoded now, with the reports a held self
            # record waits for; what is released is spooled like any own record.
            self._own.extend((event, None) for event in arbiter.release_due())
            self._distribute_batches()
        return False

    def _distribute_batches(self, max_events: int | None = None) -> bool:
        arbiter = self.arbiter
        self.spool_own()
        added = 0
        yielded = time.monotonic()
        while self._incoming and (now := time.monotonic()) < self._finish_by:
            if max_events is not None and added >= max_events:
                return True
            if now - yielded >= GIL_YIELD_INTERVAL_S:
                # Hand the GIL to the listener: a platform POST waiting behind a long
                # flush can make the platform drop the next batch.
                time.sleep(0)
                yielded = now
            body, seqs, arrived, own, amends = self._incoming.popleft()
            if own is None:
                events = self._decode(body)
                if events and events[-1].epoch_ms is not None:
                    self.listener_lag_ms = max(0.0, arrived * 1000.0 - events[-1].epoch_ms)
            else:
                events = amended(own, amends)
                self.stats.events += len(events)
            if arbiter is not None:
                events = arbiter.filter(events)
            for channel, seq in zip(self.channels, seqs, strict=True):
                channel.pending.append((seq, events))
            added += len(events)
        return False

    def _decode(self, body: bytes, recovered: bool = False) -> list[TelemetryEvent]:
        """The events of ``body``; ``recovered`` for a spooled batch, whose own records
        get back the request id that ``TelemetryEvent.to_output`` wrote beside them."""
        unread = self._count_if_all_unread(body)
        if unread:
            self.stats.unread_records += unread
            return []
        try:
            batch = decode_batch(body, self.unread_types, True, self.emf_namespaces)
        except UnreadableBatch:
            self.stats.malformed_batches += 1
            return []
        self.stats.malformed_entries += len(batch.malformed)
        self.stats.unread_records += batch.unread
        self.stats.own_lines_skipped += batch.own
        events = batch.events
        if recovered:
            for event in events:
                if event.request_id is None:
                    request_id = event.extra_fields.get("requestId")
                    if isinstance(request_id, str):
                        event.request_id = request_id
        self.stats.events += len(events)
        return events

    def _count_if_all_unread(self, body: bytes) -> int:
        """The number of records in ``body`` when every one is of a type no exporter
        reads, else 0, without parsing it.

        Every ``"type"`` key must be followed by ``:"<an unread type>"``. A record's own
        ``type`` key (a JSON log line's) or other spacing fails the test, and the body is
        decoded: the test may decode what it need not, never skip what is read. Inside a
        text line a quote is escaped, so ``"type"`` cannot occur there.
        """
        marks = self._unread_marks
        if not marks:
            return 0
        unread = sum(body.count(mark) for mark in marks)
        return unread if unread and unread == body.count(_TYPE_KEY) else 0

    def _flush_channel(self, channel: Channel, deadline: float) -> int:
        # Batches the spool dropped on overflow are already counted there.
        while channel.pending and channel.pending[0][0] <= channel.spool.cursor:
            count_by_type(channel.pending.popleft()[1], channel.overflow_by_type)
        if not channel.local:
            self._bound_backlog(channel)
        delivered = 0
        # ``finish_by`` is read again before each call: SIGTERM may set it mid-flush.
        while (channel.pending and channel.breaker.allows()
               and time.monotonic() < min(deadline, self._finish_by)):
            take: list[tuple[int, list[TelemetryEvent]]] = []
            count = 0
            split = False
            while channel.pending and (not take or count + len(channel.pending[0][1]) <= channel.call_limit):
                seq, batch = channel.pending[0]
                if not take and len(batch) > channel.call_limit:
                    # A batch larger than one call goes out in call-sized parts: the
                    # deadline is honoured between parts (a shutdown's loss report waits
                    # for the call running), and a loss count leaves out what went.
                    take.append((seq, batch[:channel.call_limit]))
                    channel.pending[0] = (seq, batch[channel.call_limit:])
                    split = True
                    break
                take.append(channel.pending.popleft())
                count += len(take[-1][1])
            events = [event for _, batch in take for event in batch]
            try:
                if events:
                    channel.exporter.export(events, deadline)
            except ExportError as error:
                self._failed(channel, take, error, split)
                break
            except Exception as error:  # a bug in an exporter must not lose the batch silently
                failure = ExportError(f"{type(error).__name__}: {error}", retryable=False)
                self._failed(channel, take, failure, split)
                break
            channel.breaker.succeeded()
            if split:
                self._part_done(channel, take[0])
            else:
                channel.spool.delivered(take[-1][0])
            if channel.local and channel.call_limit < MAX_LOCAL_EVENTS_PER_CALL:
                channel.call_limit = MAX_LOCAL_EVENTS_PER_CALL
            delivered += len(events)
            if not channel.local:
                channel.call_limit = min(MAX_REMOTE_EVENTS_PER_CALL, channel.call_limit * 2)
        self.stats.delivered += delivered
        return delivered

    def _bound_backlog(self, channel: Channel) -> None:
        owed = sum(len(events) for _, events in channel.pending)
        dropped = 0
        by_type: dict[str, int] = {}
        while channel.pending and owed > MAX_BACKLOG_EVENTS:
            seq, events = channel.pending.popleft()
            owed -= len(events)
            dropped += len(events)
            count_by_type(events, by_type)
            channel.spool.delivered(seq)  # given up on: reclaim it on disk too
        if dropped:
            self.stats.rejected_events += dropped
            diagnostics.emit("warning", "export_backlog_dropped",
                             f"{channel.name} is behind: dropped the {dropped} oldest events it owed",
                             exporter=channel.name, dropped=dropped, droppedByType=by_type)

    @staticmethod
    def _part_done(channel: Channel, part: tuple[int, list[TelemetryEvent]]) -> None:
        seq, events = part
        before = channel.partial if channel.partial is not None and channel.partial[0] == seq else (seq, 0, 0)
        functions = sum(1 for event in events if event.type == "function")
        channel.partial = (seq, before[1] + len(events), before[2] + functions)

    @staticmethod
    def _keep(channel: Channel, take: list[tuple[int, list[TelemetryEvent]]], split: bool) -> None:
        """Put ``take`` back at the head of ``pending``, a part back into its batch."""
        if split:
            seq, part = take[0]
            channel.pending[0] = (seq, part + channel.pending[0][1])
        else:
            channel.pending.extendleft(reversed(take))

    def _failed(self, channel: Channel, take: list[tuple[int, list[TelemetryEvent]]],
                error: ExportError, split: bool = False) -> None:
        if error.out_of_time:
            # Out of budget, not a failing endpoint: keep the data, send less next time.
            self._keep(channel, take, split)
            channel.call_limit = max(MIN_EVENTS_PER_CALL, channel.call_limit // 2)
            return
        self.stats.export_failures += 1
        if error.retryable:
            self._keep(channel, take, split)
            cooldown = channel.breaker.failed(error.retry_after_s)
            diagnostics.emit("warning", "export_failed",
                             f"{channel.name} export failed, retrying in {cooldown:.1f}s: {error}",
                             exporter=channel.name, retryable=True)
        else:
            rejected = sum(len(batch) for _, batch in take)
            by_type: dict[str, int] = {}
            for _, batch in take:
                count_by_type(batch, by_type)
            self.stats.rejected_events += rejected
            if split:
                self._part_done(channel, take[0])  # counted as rejected, not again as lost
            else:
                channel.spool.delivered(take[-1][0])
            diagnostics.emit("warning", "export_rejected",
                             f"{channel.name} export failed permanently, {rejected} events dropped: {error}",
                             exporter=channel.name, retryable=False, dropped=rejected, droppedByType=by_type)

    def _report_drops(self) -> None:
        for channel in self.channels:
            spool = channel.spool
            if spool.unspooled_batches != channel.reported_unspooled:
                channel.reported_unspooled = spool.unspooled_batches
                diagnostics.emit("warning", "spool_batch_too_large",
                                 f"{channel.name}: a batch larger than the spool cap was kept in memory only",
                                 exporter=channel.name, unspooledBatches=spool.unspooled_batches)
            overflow_events = sum(channel.overflow_by_type.values())
            changed = overflow_events != channel.reported_overflow_events
            if spool.dropped_records != channel.reported_drops or changed:
                if spool.dropped_records > channel.reported_drops:
                    self._export_loss(channel, {
                        "droppedRecords": spool.dropped_records - channel.reported_drops,
                        "droppedBytes": spool.dropped_bytes - channel.reported_drop_bytes,
                        "reason": "spool_overflow"}, time.monotonic() + LOSS_REPORT_BUDGET_S)
                channel.reported_drops = spool.dropped_records
                channel.reported_drop_bytes = spool.dropped_bytes
                channel.reported_overflow_events = overflow_events
                diagnostics.emit("warning", "spool_overflow",
                                 f"{channel.name} spool is full: dropped the oldest batches",
                                 exporter=channel.name, droppedRecords=spool.dropped_records,
                                 droppedBatches=spool.dropped_batches,
                                 droppedByType=dict(channel.overflow_by_type))

    def dropped_records(self) -> int:
        return sum(channel.spool.dropped_records for channel in self.channels)

    # -- shutdown -------------------------------------------------------------------
    def finish_by(self, deadline: float) -> None:
        """Make every flush, a running one included, stop by ``deadline`` (monotonic)."""
        self._finish_by = deadline
        if self.arbiter is not None:
            self.arbiter.release_all()  # the environment ends: held self records go out now

    def give_up(self, reason: str, deadline: float) -> dict[str, dict[str, object]]:
        """Stop accepting, count per exporter what it received and did not deliver,
        and tell the user while the process still lives.

        Each exporter gets one ``lambda_wrapper.loss`` record with its own count (the
        file exporter writes it, EMF turns it into metrics, remote ones send it if
        they still can before ``deadline``), and stderr gets one diagnostic line. What
        is counted here is marked delivered in the spool, so a later Init does not
        export it again. Returns the losses by exporter name.
        """
        with self._held_lock:
            self._accepting = False
            self._loss_reason = reason
            self._loss_deadline = deadline
        self._finish_by = min(self._finish_by, time.monotonic())
        self.spool_own()  # counted with the rest below
        losses: dict[str, dict[str, object]] = {}
        # A flush still running (one decode or export call it could not interrupt)
        # is waited for only while the report still fits before ``deadline``; past
        # that the count goes out beside it, and may include records that flush was
        # delivering at that moment (counted twice rather than not at all).
        locked = self._acquire_flush_lock(deadline - LOSS_REPORT_TIME_S)
        try:
            for channel in self.channels:
                with self._held_lock:
                    self._held_locked()
                    held = list(channel.held)
                    channel.held.clear()
                    channel.held_bytes = 0
                channel.pending.clear()
                if not held:
                    continue
                channel.spool.delivered(held[-1][0])
                records = sum(entry[2] for entry in held)
                functions = sum(entry[3] for entry in held)
                if channel.partial is not None and channel.partial[0] == held[0][0]:
                    records -= channel.partial[1]
                    functions -= channel.partial[2]
                by_type = {"function": functions, "other": records - functions}
                losses[channel.name] = {"droppedRecords": records, "droppedBytes": sum(e[1] for e in held),
                                        "droppedByType": by_type, "reason": reason}
            self._incoming.clear()
            if losses:
                total = sum(int(str(loss["droppedRecords"])) for loss in losses.values())
                diagnostics.emit("warning", "records_lost",
                                 f"{total} telemetry records received but not exported ({reason})",
                                 reason=reason, exporters=losses)
            for channel in self.channels:
                loss = losses.get(channel.name)
                if loss is not None and (channel.local or time.monotonic() < deadline):
                    self._export_loss(channel, loss, deadline)
        finally:
            if locked:
                self._release_flush_lock()
        return losses

    def _count_late(self, body: bytes) -> None:
        """Count a batch that arrived after ``give_up`` as lost by every exporter, and
        report it the way ``give_up`` reports (stderr, then each local exporter while
        ``deadline`` allows)."""
        reason = f"{self._loss_reason} (arrived after the loss report)"
        # Decoded, unlike the held batches counted in ``give_up``: our own diagnostic
        # lines come back here, and counting them would report the report, endlessly.
        events = self._decode(body)
        if not events:
            return
        records = len(events)
        functions = sum(1 for event in events if event.type == "function")
        loss: dict[str, object] = {"droppedRecords": records, "droppedBytes": len(body),
                                   "droppedByType": {"function": functions, "other": records - functions},
                                   "reason": reason}
        self.late_records += records
        diagnostics.emit("warning", "records_lost",
                         f"{records} telemetry records received but not exported ({reason})",
                         reason=reason, exporters={channel.name: loss for channel in self.channels})
        if time.monotonic() >= self._loss_deadline or not self._acquire_flush_lock(self._loss_deadline):
            return
        try:
            for channel in self.channels:
                if channel.local:
                    self._export_loss(channel, loss, self._loss_deadline)
        finally:
            self._release_flush_lock()

    def _export_loss(self, channel: Channel, loss: dict[str, object], deadline: float) -> None:
        try:
            channel.exporter.export([own_event(LOSS, {**loss, "exporter": channel.name})], deadline)
        except Exception:  # the stderr line already said it
            pass
