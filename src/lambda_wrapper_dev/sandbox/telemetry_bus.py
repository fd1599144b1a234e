"""Per-subscriber batching and delivery of telemetry, with Lambda's drop rules.

Each subscriber has a buffer. A batch is ready when it holds ``maxItems`` events
or ``maxBytes`` bytes, or when ``timeoutMs`` has passed since its first event
(RAPID's Telemetry API, contract 3.2). One POST is in flight per subscriber: if
the next batch is ready while the previous one is still in flight, or a POST
fails, the batch is dropped and ``platform.logsDropped`` is emitted.

The listener is charged only for its own time: from when the POST reaches it
(connected, body built) to its answer. The sandbox's sender shares this process's
GIL with the threads reading a log flood, so building and connecting can take it
tens of milliseconds that RAPID's sender does not take. A batch that becomes ready
while the previous POST is in flight is therefore dropped only once the listener
has held that POST unanswered for as long as the batch has been ready beyond the
sender's own delay: as if the POST had left when the batch was taken.

Freezing: nothing is judged or sent while the environment is frozen. A POST that
was already in flight when the environment froze is waited for after the thaw
instead of counting against the listener (see ``FreezeClock``).

Events emitted before subscriptions close are kept and replayed to each new
subscriber, which is how an extension that subscribes during Init still sees
``platform.initStart``.

Cost matters: the listener of an internal extension shares the function's CPU,
and every millisecond the platform's own threads spend per log line (on two busy
cores) is taken from that listener and turns into "slow consumer" drops Lambda
would not have. So each event is JSON-encoded once, when it is buffered; lines are
published a pipe read at a time under one lock, and made into ``StoredEvent``s only
when a subscriber takes their category or Init's replay keeps them (a subscriber of
platform telemetry alone costs a chatty function's lines nothing); and only what
changes a schedule wakes a thread (a buffer that starts, or fills up), not every
event.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote

from .freeze_clock import FreezeClock
from .records import Event
from .subscriber_views import StoredEvent, View, takes_category
from .subscription_rules import SubscriptionRequest
from .telemetry_delivery import BatchSender, DeliveryFailed

SLOW_CONSUMER = (
    "Some logs were dropped because the downstream consumer is slower than the logs production rate"
)
# Events still buffered (or in a POST that had not completed) when the environment is
# torn down: counted as dropped, so that no event the platform produced vanishes
# without a count.
NOT_DELIVERED_AT_SHUTDOWN = (
    "Some logs were dropped because the environment shut down before they were delivered"
)
# At shutdown, stop waiting for a listener that has completed no POST for this long.
FLUSH_STALL_S = 0.5

DropReporter = Callable[[int, int, str], None]

# One encoder for every event: ``json.dumps`` with arguments builds a new one per call.
_encode_any = json.JSONEncoder(separators=(",", ":")).encode


def _encode(event: dict) -> bytes:
    """Compact JSON of one event; log lines (a string record) take a short cut
    that gives the same bytes at a fifth of the cost."""
    record = event.get("record")
    if type(record) is str and len(event) == 3 and "time" in event and "type" in event:
        time_, type_ = _quote(event["time"]), _quote(event["type"])
        return f'{{"time":{time_},"type":{type_},"record":{_quote(record)}}}'.encode()
    return _encode_any(event).encode()


@dataclass
class Subscriber:
    name: str
    request: SubscriptionRequest
    view: View
    sender: BatchSender
    ready: threading.Condition  # shares the bus lock; wakes this subscriber's sender
    buffer: list[bytes] = field(default_factory=list)
    buffer_bytes: int = 0
    first_at: float | None = None  # monotonic time of the oldest buffered event
    in_flight: bool = False
    in_flight_epoch: int = -1
    taken_at: float = 0.0  # monotonic time the batch in flight was taken
    reached_at: float | None = None  # ... and when its POST reached the listener
    ready_since: float | None = None  # the next batch was first seen ready meanwhile
    handed_over: list[bytes] | None = None
    closed: bool = False
    delivered_batches: int = 0
    added: int = 0  # events ever buffered
    taken: int = 0  # events ever taken out (sent or dropped)
    flush_target: int = 0  # ``added`` when the shutdown flush began
    flush_failed: bool = False  # a POST failed during the shutdown flush: not retried

    def add(self, events: Iterable[dict]) -> bool:
        """Buffer events; True if that changed when the next batch is due."""
        was_due = self.due_at()
        for item in events:
            encoded = _encode(item)
            if not self.buffer:
                self.first_at = time.monotonic()
            self.buffer.append(encoded)
            self.buffer_bytes += len(encoded)
            self.added += 1
        return self.due_at() != was_due

    def due_at(self) -> float | None:
        """When the buffered batch becomes ready (monotonic), None if empty."""
        if not self.buffer or self.first_at is None:
            return None
        buffering = self.request.buffering
        if len(self.buffer) >= buffering.max_items or self.buffer_bytes >= buffering.max_bytes:
            return 0.0
        return self.first_at + buffering.timeout_ms / 1000.0

    def take_batch(self) -> tuple[list[bytes], int]:
        buffering = self.request.buffering
        count = 0
        taken_bytes = 0
        for encoded in self.buffer[: buffering.max_items]:
            if count and taken_bytes + len(encoded) > buffering.max_bytes:
                break
            count += 1
            taken_bytes += len(encoded)
        # One slice, not pop(0) per event: that was quadratic in a 10,000-event batch.
        taken = self.buffer[:count]
        del self.buffer[:count]
        self.buffer_bytes -= taken_bytes
        self.taken += count
        self.first_at = time.monotonic() if self.buffer else None
        return taken, taken_bytes

    @property
    def flushed(self) -> bool:
        """Everything buffered when the flush began is out (or its listener is gone).

        Events that arrive later (a function still printing after a timeout) go out
        too while the flush lasts, but are not waited for.
        """
        return not self.in_flight and (self.taken >= self.flush_target or self.flush_failed)


class TelemetryBus:
    def __init__(self, clock: FreezeClock, report_drop: DropReporter) -> None:
        self._clock = clock
        self._report_drop = report_drop
        self._lock = threading.Lock()
        # The scheduler and the waiters (deliver_due, flush_all) wait on this one;
        # each sender has its own condition on the same lock.
        self._cond = threading.Condition(self._lock)
        self._subscribers: list[Subscriber] = []
        self._init_events: list[StoredEvent] | None = []
        self._flush_everything = False
        self._closed = False
        self._scheduler = threading.Thread(
            target=self._schedule_loop, name="telemetry-scheduler", daemon=True
        )
        self._scheduler.start()

    # -- producers -----------------------------------------------------------------

    def publish(self, stored: StoredEvent) -> None:
        self.publish_many([stored])

    def publish_many(self, stored_events: list[StoredEvent]) -> None:
        with self._cond:
            self._publish_locked(stored_events, self._subscribers)

    def publish_lines(self, category: str, events: list[Event], raw_lines: list[str]) -> None:
        """Log lines of one category (``function`` or ``extension``), with their original
        text; nothing is built for them when nobody takes that category."""
        with self._cond:
            takers = [s for s in self._subscribers if takes_category(s.request, category)]
            if not takers and self._init_events is None:
                return
            stored = [StoredEvent(event, line) for event, line in zip(events, raw_lines, strict=True)]
            self._publish_locked(stored, takers)

    def _publish_locked(self, stored_events: list[StoredEvent], subscribers: list[Subscriber]) -> None:
        if self._init_events is not None:
            self._init_events.extend(stored_events)
        reschedule = False
        for subscriber in subscribers:
            view = subscriber.view
            if subscriber.add(item for stored in stored_events for item in view(stored)):
                reschedule = True
        if reschedule:
            self._cond.notify_all()

    def subscribe(self, name: str, request: SubscriptionRequest, view: View) -> None:
        """Add (or replace) ``name``'s subscription and replay the Init events to it."""
        sender = BatchSender(request.destination, self._clock.active_now)
        subscriber = Subscriber(name, request, view, sender, threading.Condition(self._lock))
        with self._cond:
            for existing in [s for s in self._subscribers if s.name == name]:
                self._retire(existing)
            subscriber.add(item for stored in self._init_events or [] for item in view(stored))
            self._subscribers.append(subscriber)
            self._cond.notify_all()
        threading.Thread(
            target=self._send_loop, args=(subscriber,), name=f"telemetry-{name}", daemon=True
        ).start()

    def close_subscriptions(self) -> None:
        """Init is over: later events are no longer kept for replay."""
        with self._cond:
            self._init_events = None

    # -- environment transitions ----------------------------------------------------

    def deliver_due(self, max_wait_s: float) -> None:
        """Before a freeze: let ready batches go out and wait for POSTs in flight."""
        self._wait_until(
            lambda: not any(s.in_flight or s.due_at() == 0.0 or self._past_due(s) for s in self._subscribers),
            max_wait_s,
        )

    def flush_all(self, max_wait_s: float, stall_s: float = FLUSH_STALL_S) -> None:
        """Before shutdown: send everything buffered, never dropping.

        Batches go out one after the other, each as soon as the previous one is
        answered, for as long as the listeners keep answering: the wait ends when
        everything is delivered, when no POST has completed for ``stall_s``, or at
        ``max_wait_s``. A subscriber whose POST fails is not tried again: its
        listener is gone (an internal extension's listener dies with its runtime),
        and retrying would only feed it the ``logsDropped`` of its own failure.
        """
        with self._cond:
            self._flush_everything = True
            for subscriber in self._subscribers:
                subscriber.flush_failed = False
                subscriber.flush_target = subscriber.added
            self._cond.notify_all()
        try:
            self._wait_with_progress(max_wait_s, stall_s)
        finally:
            with self._cond:
                self._flush_everything = False

    def thawed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def reset(self) -> None:
        """The environment is gone: drop its subscribers, start keeping Init events again."""
        with self._cond:
            drops = [self._retire(subscriber) for subscriber in list(self._subscribers)]
        # Reported before Init events are kept again: they belong to the old environment.
        self._report_undelivered(drops)
        with self._cond:
            self._init_events = []

    def close(self) -> None:
        with self._cond:
            drops = [self._retire(subscriber) for subscriber in list(self._subscribers)]
            self._closed = True
            self._cond.notify_all()
        self._report_undelivered(drops)

    @property
    def subscriber_names(self) -> list[str]:
        with self._cond:
            return [s.name for s in self._subscribers]

    # -- internals ----------------------------------------------------------------------

    def _past_due(self, subscriber: Subscriber) -> bool:
        due = subscriber.due_at()
        return due is not None and due <= time.monotonic()

    def _wait_until(self, done: Callable[[], bool], max_wait_s: float) -> None:
        deadline = time.monotonic() + max_wait_s
        with self._cond:
            self._cond.notify_all()
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(min(remaining, 0.05))

    def _wait_with_progress(self, max_wait_s: float, stall_s: float) -> None:
        started = time.monotonic()
        deadline = started + max_wait_s
        with self._cond:
            progress = self._progress()
            progress_at = started
            while not all(s.flushed for s in self._subscribers):
                now = time.monotonic()
                if self._progress() != progress:
                    progress, progress_at = self._progress(), now
                if now >= deadline or now - progress_at >= stall_s:
                    return
                self._cond.wait(min(deadline - now, 0.05))

    def _progress(self) -> int:
        return sum(s.delivered_batches for s in self._subscribers)

    def _retire(self, subscriber: Subscriber) -> tuple[int, int]:
        """Remove a subscriber; returns (bytes, events) it was never sent.

        A POST still in flight counts too: its sender does not report a failure once
        the subscriber is retired.
        """
        subscriber.closed = True
        self._subscribers.remove(subscriber)
        undelivered = list(subscriber.buffer)
        if subscriber.in_flight and subscriber.handed_over is not None:
            undelivered += subscriber.handed_over
        subscriber.ready.notify_all()
        self._cond.notify_all()
        return sum(len(encoded) for encoded in undelivered), len(undelivered)

    def _report_undelivered(self, drops: list[tuple[int, int]]) -> None:
        for dropped_bytes, dropped_records in drops:
            if dropped_records:
                self._report_drop(dropped_bytes, dropped_records, NOT_DELIVERED_AT_SHUTDOWN)

    def _schedule_loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                drops, wake_at = self._schedule_locked()
                if not drops:
                    timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
                    self._cond.wait(timeout if timeout is None else min(timeout, 1.0))
                    continue
            for dropped_bytes, dropped_records, reason in drops:
                self._report_drop(dropped_bytes, dropped_records, reason)

    def _schedule_locked(self) -> tuple[list[tuple[int, int, str]], float | None]:
        if self._clock.frozen:
            return [], None
        drops: list[tuple[int, int, str]] = []
        wake_at: float | None = None
        now = time.monotonic()
        for subscriber in self._subscribers:
            flushing = self._flush_everything and not subscriber.flush_failed
            while subscriber.buffer:
                due = 0.0 if flushing else subscriber.due_at()
                if due is None or due > now:
                    wake_at = due if wake_at is None or (due is not None and due < wake_at) else wake_at
                    break
                if not subscriber.in_flight:
                    batch, _ = subscriber.take_batch()
                    subscriber.handed_over = batch
                    subscriber.in_flight = True
                    subscriber.in_flight_epoch = self._clock.epoch
                    subscriber.taken_at, subscriber.reached_at, subscriber.ready_since = now, None, None
                    subscriber.ready.notify()
                    break
                if flushing or subscriber.in_flight_epoch != self._clock.epoch:
                    break  # wait for the POST in flight; it began before the last thaw
                if subscriber.ready_since is None:
                    subscriber.ready_since = now
                if subscriber.reached_at is None:
                    break  # the sender's own delay: the listener has nothing to answer yet
                answer_by = subscriber.ready_since + (subscriber.reached_at - subscriber.taken_at)
                if answer_by > now:
                    wake_at = answer_by if wake_at is None else min(wake_at, answer_by)
                    break
                batch, batch_bytes = subscriber.take_batch()
                subscriber.ready_since = None
                drops.append((batch_bytes, len(batch), SLOW_CONSUMER))
        return drops, wake_at

    def _send_loop(self, subscriber: Subscriber) -> None:
        while True:
            with self._cond:
                while subscriber.handed_over is None and not subscriber.closed:
                    subscriber.ready.wait()
                if subscriber.handed_over is None:
                    subscriber.sender.close()
                    return
                batch = subscriber.handed_over
            failure: str | None = None

            def reached() -> None:
                with self._cond:
                    subscriber.reached_at = time.monotonic()
                    self._cond.notify_all()

            try:
                subscriber.sender.send(batch, reached)
            except DeliveryFailed as error:
                failure = f"could not send events: {error}"
            with self._cond:
                subscriber.handed_over = None
                subscriber.in_flight = False
                if failure is None:
                    subscriber.delivered_batches += 1
                elif self._flush_everything:
                    subscriber.flush_failed = True
                self._cond.notify_all()
            if failure is not None and not subscriber.closed:
                self._report_drop(sum(len(encoded) for encoded in batch), len(batch), failure)
