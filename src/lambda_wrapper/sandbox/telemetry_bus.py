"""Per-subscriber batching and delivery of telemetry, with Lambda's drop rules.

Each subscriber has a buffer. A batch is ready when it holds ``maxItems`` events
or ``maxBytes`` bytes, or when ``timeoutMs`` has passed since its first event
(RAPID's Telemetry API, contract 3.2). One POST is in flight per subscriber: if
the next batch is ready while the previous one is still in flight, or a POST
fails, the batch is dropped and ``platform.logsDropped`` is emitted.

Freezing: nothing is judged or sent while the environment is frozen. A POST that
was already in flight when the environment froze is waited for after the thaw
instead of counting against the listener (see ``FreezeClock``).

Events emitted before subscriptions close are kept and replayed to each new
subscriber, which is how an extension that subscribes during Init still sees
``platform.initStart``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .freeze_clock import FreezeClock
from .records import Event
from .subscriber_views import StoredEvent, View
from .subscription_rules import SubscriptionRequest
from .telemetry_delivery import BatchSender, DeliveryFailed

SLOW_CONSUMER = (
    "Some logs were dropped because the downstream consumer is slower than the logs production rate"
)

DropReporter = Callable[[int, int, str], None]


@dataclass
class Subscriber:
    name: str
    request: SubscriptionRequest
    view: View
    sender: BatchSender
    buffer: list[tuple[Event, int]] = field(default_factory=list)
    buffer_bytes: int = 0
    first_at: float | None = None  # monotonic time of the oldest buffered event
    in_flight: bool = False
    in_flight_epoch: int = -1
    handed_over: list[Event] | None = None
    closed: bool = False
    delivered_batches: int = 0

    def add(self, events: list[Event]) -> None:
        for item in events:
            size = len(json.dumps(item, separators=(",", ":")))
            if not self.buffer:
                self.first_at = time.monotonic()
            self.buffer.append((item, size))
            self.buffer_bytes += size

    def due_at(self) -> float | None:
        """When the buffered batch becomes ready (monotonic), None if empty."""
        if not self.buffer or self.first_at is None:
            return None
        buffering = self.request.buffering
        if len(self.buffer) >= buffering.max_items or self.buffer_bytes >= buffering.max_bytes:
            return 0.0
        return self.first_at + buffering.timeout_ms / 1000.0

    def take_batch(self) -> tuple[list[Event], int]:
        buffering = self.request.buffering
        taken: list[Event] = []
        taken_bytes = 0
        while self.buffer and len(taken) < buffering.max_items:
            item, size = self.buffer[0]
            if taken and taken_bytes + size > buffering.max_bytes:
                break
            self.buffer.pop(0)
            taken.append(item)
            taken_bytes += size
        self.buffer_bytes -= taken_bytes
        self.first_at = time.monotonic() if self.buffer else None
        return taken, taken_bytes


class TelemetryBus:
    def __init__(self, clock: FreezeClock, report_drop: DropReporter) -> None:
        self._clock = clock
        self._report_drop = report_drop
        self._cond = threading.Condition()
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
        with self._cond:
            if self._init_events is not None:
                self._init_events.append(stored)
            for subscriber in self._subscribers:
                subscriber.add(subscriber.view(stored))
            self._cond.notify_all()

    def subscribe(self, name: str, request: SubscriptionRequest, view: View) -> None:
        """Add (or replace) ``name``'s subscription and replay the Init events to it."""
        subscriber = Subscriber(name, request, view, BatchSender(request.destination, self._clock.active_now))
        with self._cond:
            for existing in [s for s in self._subscribers if s.name == name]:
                self._retire(existing)
            for stored in self._init_events or []:
                subscriber.add(view(stored))
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

    def flush_all(self, max_wait_s: float) -> None:
        """Before shutdown: send everything buffered, never dropping."""
        with self._cond:
            self._flush_everything = True
            self._cond.notify_all()
        try:
            self._wait_until(lambda: not any(s.in_flight or s.buffer for s in self._subscribers), max_wait_s)
        finally:
            with self._cond:
                self._flush_everything = False

    def thawed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def reset(self) -> None:
        """The environment is gone: drop its subscribers, start keeping Init events again."""
        with self._cond:
            for subscriber in list(self._subscribers):
                self._retire(subscriber)
            self._init_events = []

    def close(self) -> None:
        with self._cond:
            for subscriber in list(self._subscribers):
                self._retire(subscriber)
            self._closed = True
            self._cond.notify_all()

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

    def _retire(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        self._subscribers.remove(subscriber)
        self._cond.notify_all()

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
            while subscriber.buffer:
                due = 0.0 if self._flush_everything else subscriber.due_at()
                if due is None or due > now:
                    wake_at = due if wake_at is None or (due is not None and due < wake_at) else wake_at
                    break
                if not subscriber.in_flight:
                    batch, _ = subscriber.take_batch()
                    subscriber.handed_over = batch
                    subscriber.in_flight = True
                    subscriber.in_flight_epoch = self._clock.epoch
                    self._cond.notify_all()
                    break
                if self._flush_everything or subscriber.in_flight_epoch != self._clock.epoch:
                    break  # wait for the POST in flight; it began before the last thaw
                batch, batch_bytes = subscriber.take_batch()
                drops.append((batch_bytes, len(batch), SLOW_CONSUMER))
        return drops, wake_at

    def _send_loop(self, subscriber: Subscriber) -> None:
        while True:
            with self._cond:
                while subscriber.handed_over is None and not subscriber.closed:
                    self._cond.wait()
                if subscriber.handed_over is None:
                    subscriber.sender.close()
                    return
                batch = subscriber.handed_over
            failure: str | None = None
            try:
                subscriber.sender.send(batch)
            except DeliveryFailed as error:
                failure = f"could not send events: {error}"
            with self._cond:
                subscriber.handed_over = None
                subscriber.in_flight = False
                subscriber.delivered_batches += failure is None
                self._cond.notify_all()
            if failure is not None and not subscriber.closed:
                batch_bytes = sum(len(json.dumps(item, separators=(",", ":"))) for item in batch)
                self._report_drop(batch_bytes, len(batch), failure)
