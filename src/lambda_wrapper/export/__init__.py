"""Export: the exporter contract, batching, flush policy, the /tmp spool and the pipeline.

It knows nothing of where telemetry came from: it gets decoded events. This module is
the part every Init uses; each exporter is a module of its own in this package,
imported by ``build_exporters`` only when it is switched on.

Sections: ``policy`` (when to flush), ``exporter`` (the contract), ``function
metadata``, ``spool``, ``pipeline`` and ``registry`` (which exporters the settings ask
for). What only a failure or a crash runs has modules of its own, imported where it
happens, so that the default lifecycle's Init does not pay for them: ``failures`` (the
errors and the circuit breaker of a failing exporter, a refused batch) and ``readback``
(a dead process's leftovers, an overflowing spool). ``contract`` checks an exporter
class against the contract: the tests run it on this package's, Init never does.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import threading
import time
from types import SimpleNamespace

from .. import aws
from ..instruments import LOSS, iso_time, own_event
from ..settings import emit
from ..telemetry import LOG_TYPES, TelemetryEvent, decode_platform_events, parse_batch, parse_time_ms

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from ..instruments import InvocationRecord, SourceArbiter
    from ..settings import Settings
    from ..telemetry import DecodedBatch
    from .failures import CircuitBreaker

    Amend = Callable[[list[TelemetryEvent]], None]


# == policy ================================================================================
# When to flush: at the end of each invocation when traffic is sparse, periodically
# when it is dense.
#
# Every flush that happens before our ``/event/next`` is time the platform waits for
# (billed, though the caller already has its response). With sparse traffic the
# environment may be frozen or recycled after any invocation, so data should leave at
# the end of each one. With dense traffic, flushing every few seconds costs a fraction
# of the invocations and loses nothing: the spool holds the rest.


DENSE_GAP_S = 1.0  # invocations closer than this are "dense"
DENSE_FLUSH_INTERVAL_S = 1.0
# Past this much unexported telemetry, flush even when dense: a large backlog would
# not fit in the 500 ms Lambda gives at shutdown (10,000 log lines are ~0.5 MB).
MAX_UNFLUSHED_BYTES = 256 * 1024


class FlushPolicy:
    def __init__(self) -> None:
        self.last_invocation: float | None = None
        self.last_flush = time.monotonic()
        self.dense = False

    def invocation(self, pipeline: Pipeline, now: float | None = None) -> bool:
        """Count one invocation; should it end with a flush of what ``pipeline`` holds?

        One call: the background strategy makes it on the handler's path."""
        now = time.monotonic() if now is None else now
        if self.last_invocation is not None:
            self.dense = now - self.last_invocation < DENSE_GAP_S
        self.last_invocation = now
        if not self.dense:
            return True
        # The time and the volume first: counting what waits takes longer, and is needed
        # only once one of them says a flush is due.
        if now - self.last_flush < DENSE_FLUSH_INTERVAL_S and pipeline.unflushed_bytes < MAX_UNFLUSHED_BYTES:
            return False
        return pipeline.pending_batches > 0

    def flushed(self, now: float | None = None) -> None:
        self.last_flush = time.monotonic() if now is None else now


# == exporter ==============================================================================
# The exporter contract: what the pipeline, the registry and the extension read of an exporter.
#
# Every exporter subclasses ``Exporter`` and declares, in its own class body:
#
# - ``name``: ``str``, the value of ``LAMBDA_WRAPPER_EXPORTERS`` that selects it; it also
#   names its spool directory and its loss counts.
# - ``local``: ``bool``. A local exporter writes to this process's stdout, a file or a
#   non-blocking socket: it takes every pending event in each flush, outside the flush
#   budget, since its cost is the CPU of the data itself. A remote one sends over the
#   network within the budget, with adaptive call sizes and a backlog cap.
# - ``telemetry_types``: the Telemetry API types (``platform``, ``function``,
#   ``extension``) it needs; the extension subscribes to the union, so what no exporter
#   reads costs nothing.
# - ``prepare()``: one-time set-up off the handler's path, called once after the
#   handler import (remote exporters load TLS certificates there). A local exporter's
#   runs on the main thread at the end of Init and must be cheap; a remote exporter's
#   runs on a thread of its own. Failures are reported and the exporter still runs.
# - ``export(events, deadline)``: deliver ``events`` (``TelemetryEvent``), stopping by
#   ``deadline`` (``time.monotonic()``); raise ``failures.ExportError`` to have them kept
#   (retryable) or dropped and counted.
#
# A class that leaves any of them out fails when it is defined (``contract``), not when a
# flush first touches it.
#
# One member is optional: ``verbatim_log_lines`` (``bool``, False unless declared). An
# exporter that declares it True gets a log line as the bytes of its entry in the
# platform's batch (``log_lines.split_entries``) wherever the batch's framing allows
# taking it out undecoded, a ``bytes`` among the ``TelemetryEvent``s of ``events``. Batches
# are split so only where every exporter that reads log lines declares it: a log line
# that is never decoded costs a fraction of one that is.


CONTRACT = ("name", "local", "telemetry_types", "prepare", "export")


class Exporter:
    name: str
    local: bool
    telemetry_types: tuple[str, ...]
    verbatim_log_lines: bool = False  # optional (the contract above)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # This package's exporters are held to the contract by tests/test_export_contract.py,
        # not here, where checking one would cost every Init that defines it.
        if cls.__module__.startswith(__name__ + "."):
            return
        from .contract import contract_problems

        problems = contract_problems(cls)
        if problems:
            raise TypeError(f"exporter {cls.__qualname__} does not meet the exporter contract: "
                            + "; ".join(problems))

    def prepare(self) -> None:
        raise NotImplementedError

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        raise NotImplementedError


# == function metadata =====================================================================
# What the Lambda environment says about the function, read once for every exporter.


class FunctionMetadata:
    """The function's identity; a field is None when the environment does not say.

    ``log_group`` and ``log_stream`` are absent under SnapStart (platform contract 5.1).
    """

    __slots__ = (
        "initialization_type",
        "log_group",
        "log_stream",
        "memory_mb",
        "name",
        "region",
        "runtime",
        "version",
    )

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.name = env.get(aws.FUNCTION_NAME) or None
        self.version = env.get(aws.FUNCTION_VERSION) or None
        self.region = env.get(aws.REGION) or env.get(aws.DEFAULT_REGION) or None
        memory = env.get(aws.FUNCTION_MEMORY_SIZE, "")
        self.memory_mb = int(memory) if memory.strip().isdigit() else None
        self.log_group = env.get(aws.LOG_GROUP_NAME) or None
        self.log_stream = env.get(aws.LOG_STREAM_NAME) or None
        self.runtime = env.get(aws.EXECUTION_ENV) or None
        self.initialization_type = env.get(aws.INITIALIZATION_TYPE) or None

    def as_dict(self) -> dict[str, object]:
        """The fields that are known, under the camelCase names of the platform's records."""
        fields = {
            "functionName": self.name,
            "functionVersion": self.version,
            "region": self.region,
            "memorySizeMB": self.memory_mb,
            "logGroupName": self.log_group,
            "logStreamName": self.log_stream,
            "runtime": self.runtime,
            "initializationType": self.initialization_type,
        }
        return {key: value for key, value in fields.items() if value is not None}


# == spool =================================================================================
# A bounded, crash-safe spool of telemetry batches under /tmp, one per exporter.
#
# Every batch the listener acknowledged is appended here before anything else looks at
# it, so a runtime killed mid-invocation (SIGKILL, out-of-memory, timeout) loses
# nothing: the next Init finds the dead process's spool and exports what it holds.
# Each exporter has its own spool, so one exporter being down never makes another
# re-send, and each spool needs one cursor only. Past the size cap the oldest segment
# goes, and every record in it that was not delivered is counted as dropped.
#
# Layout: ``<tmp>/lambda-wrapper/spool/<exporter>/<pid>-<start ns>/`` holding segment
# files named by their first sequence number, each a run of ``<seq> <length>\n<body>\n``
# entries, and ``cursor``: the last delivered sequence number, space-padded to
# ``CURSOR_BYTES`` and rewritten in place by one ``pwrite``, which a killed process
# cannot tear (the numbers only grow, so no longer one is ever left behind), at a
# hundredth of the cost of replacing a file, once per export call.


SEGMENT_BYTES = 512 * 1024
CURSOR_BYTES = 20  # digits of the largest sequence number, space-padded
# The cap covers the cursor file too, so segments get the cap minus this.
CURSOR_FILES_BYTES = 2 * CURSOR_BYTES


class Spool:
    def __init__(self, root: str, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._segment_capacity = max(0, max_bytes - CURSOR_FILES_BYTES)
        self.directory = os.path.join(root, f"{os.getpid()}-{time.time_ns()}")
        os.makedirs(self.directory, exist_ok=True)
        self.dropped_records = 0
        self.dropped_bytes = 0
        self.dropped_batches = 0
        self.unspooled_batches = 0
        self.cursor = 0
        self._next_seq = 1
        # Each segment file's ``first`` and ``last`` sequence numbers, ``path`` and ``size``
        # in bytes: a namespace rather than a class of its own (a class costs Init more than
        # all its uses), since nothing outside the spool reads one.
        self._segments: list[SimpleNamespace] = []
        self._fd: int | None = None
        self._cursor_fd: int | None = None
        self._bytes = 0
        self._lock = threading.Lock()  # the listener and the supervisor both append

    def append(self, body: bytes) -> int:
        """Store one batch; it survives the process (``/tmp`` outlives a killed runtime)."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            # Written from its parts by one writev: copying a large body into one entry first
            # was a third of what storing it cost.
            header = b"%d %d\n" % (seq, len(body))
            size = len(header) + len(body) + 1
            if size > self._segment_capacity:
                # Bigger than the whole cap: it cannot be kept on disk. It is still
                # exported from memory; only its crash safety is lost, and counted.
                self.unspooled_batches += 1
                return seq
            # Room first, so the spool never holds more than the cap, even briefly.
            self._make_room(size)
            # Overflow drops whole segments: one may not hold more than a share of the cap.
            limit = min(SEGMENT_BYTES, self._segment_capacity // 4)
            if self._fd is None or self._segments[-1].size + size > limit:
                self._open_segment(seq)
            assert self._fd is not None
            os.writev(self._fd, (header, body, b"\n"))
            segment = self._segments[-1]
            segment.size += size
            segment.last = seq
            self._bytes += size
            return seq

    def delivered(self, seq: int) -> None:
        """Every batch up to ``seq`` reached the exporter's destination."""
        with self._lock:
            if seq <= self.cursor:
                return
            self.cursor = seq
            if self._cursor_fd is None:
                path = os.path.join(self.directory, "cursor")
                self._cursor_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.pwrite(self._cursor_fd, b"%-*d" % (CURSOR_BYTES, seq), 0)
            # Whole segments that are delivered (and not being written) are reclaimed.
            while len(self._segments) > 1 and self._segments[0].last <= seq:
                self._remove_segment()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def recover_orphans(self) -> list[tuple[int, bytes]]:
        """Undelivered batches of dead processes, oldest first, moved into this spool.

        They are appended here before the orphan is deleted, so a crash during
        recovery loses nothing either.
        """
        own = os.path.basename(self.directory)
        others = [name for name in list_directory(self.root) if name != own]
        if not others:  # no process before this one left a spool: the usual Init
            return []
        from .readback import recover_spools

        return recover_spools(self, others)

    # -- internals ----------------------------------------------------------------
    def _open_segment(self, seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = os.path.join(self.directory, f"{seq:012d}.seg")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments.append(SimpleNamespace(first=seq, last=seq - 1, path=path, size=0))

    def _make_room(self, incoming: int) -> None:
        while self._bytes + incoming > self._segment_capacity and self._segments:
            if len(self._segments) == 1 and self._fd is not None:
                os.close(self._fd)  # dropping the segment being written: start a new one
                self._fd = None
            from .readback import read_segment  # overflow: not on the default lifecycle

            for seq, body in read_segment(self._segments[0].path):
                if seq > self.cursor:
                    self.dropped_batches += 1
                    self.dropped_records += count_records(body)
                    self.dropped_bytes += len(body)
            self.cursor = max(self.cursor, self._segments[0].last)
            self._remove_segment()

    def _remove_segment(self) -> None:
        segment = self._segments.pop(0)
        try:
            os.unlink(segment.path)
        except OSError:
            pass
        self._bytes -= segment.size


def count_records(body: bytes) -> int:
    """Events in a raw batch, without parsing it (what held, dropped and lost batches count).

    An event opens with its ``time`` key (the Telemetry API's order, and ours), and a
    batch is one encoder's output, compact or spaced as its first event shows: each
    event after the first starts at a comma and its opening ``{"time"``. A JSON-format
    log record's own ``time`` key is not counted, wherever it sits, unless it opens an
    object in an array. A batch in another key order or layout is counted by its
    ``time`` keys.
    """
    if body.startswith(b'[{"time":'):
        return body.count(b', {"time"' if body.startswith(b'[{"time": ') else b',{"time"') + 1
    if body == b"[]":  # what a batch of log lines leaves an exporter that reads none
        return 0
    return max(1, body.count(b'"time"'))


def list_directory(directory: str) -> list[str]:
    """The names in ``directory``; none where it cannot be read (not made yet, or gone)."""
    try:
        return os.listdir(directory)
    except OSError:
        return []


IN_FLIGHT_SLOT = 128  # bytes: "<state> <epoch ms> <oom kills> <request id>", space-padded
RUNNING, ENDED = b"R", b"-"


class InFlightMarker:
    """Which invocation this process is running, kept in a file beside the spool so that
    the next Init can tell that a process died in the middle of one.

    One fixed-size slot rewritten in place: ``begin`` writes ``R <start epoch ms> <oom
    kills at Init> <request id>`` and a newline (what follows it is stale), ``end``
    overwrites its first byte with ``-``. Each is one ``pwrite`` on the handler's
    thread (about 0.6 µs here, on ext4 like Lambda's ``/tmp``); the page cache keeps what
    was written when the process dies, whatever kills it. A shared mapping of the file
    would make each a store into memory instead, but loading ``mmap`` is paid in every
    cold start (about 0.3 ms of Init on the RIE), where a pwrite pair costs about 1.3 µs
    per invocation. The cgroup's ``oom_kill`` counter, read once at Init where the
    function can read it, lets the next Init tell an out-of-memory kill (the counter
    grew) from any other death; where it cannot be read, every death is just a death.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.path = os.path.join(root, f"{os.getpid()}-{time.time_ns()}")
        self.oom_kills = oom_kill_count()
        self._oom_text = b"-1" if self.oom_kills is None else b"%d" % self.oom_kills
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.pwrite(self._fd, ENDED.ljust(IN_FLIGHT_SLOT), 0)

    def begin(self, request_id: str, started_epoch_s: float) -> None:
        slot = b"R %d %s %s\n" % (int(started_epoch_s * 1000), self._oom_text, request_id.encode())
        if len(slot) > IN_FLIGHT_SLOT:
            slot = slot[:IN_FLIGHT_SLOT - 1] + b"\n"
        os.pwrite(self._fd, slot, 0)

    def end(self) -> None:
        os.pwrite(self._fd, ENDED, 0)

    def discard(self) -> None:
        """A marker no invocation will use: its file goes, so that the next Init in this
        environment does not read it as a dead process's."""
        os.close(self._fd)
        os.unlink(self.path)

    def recover_orphans(self) -> list[tuple[str, float, bool | None]]:
        """Invocations that dead processes were running: (request id, start epoch s,
        whether the cgroup saw an out-of-memory kill since, None where unknown)."""
        own = os.path.basename(self.path)
        others = [name for name in list_directory(self.root) if name != own]
        if not others:  # no process before this one left its marker: the usual Init
            return []
        from .readback import dead_invocations

        return dead_invocations(self, others)


def oom_kill_count() -> int | None:
    """The ``oom_kill`` count of this process's memory cgroup (v2 ``memory.events``, v1
    ``memory.oom_control``), where it can be read."""
    try:
        # Decoded as UTF-8: its codec is built in, where naming any other (ascii) imports
        # one during Init.
        lines = read_file("/proc/self/cgroup").decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            candidates.append(f"/sys/fs/cgroup{path.rstrip('/')}/memory.events")
        elif "memory" in controllers.split(","):
            candidates.append(f"/sys/fs/cgroup/memory{path.rstrip('/')}/memory.oom_control")
    for candidate in candidates:
        try:
            for entry in read_file(candidate).splitlines():
                if entry.startswith(b"oom_kill "):
                    return int(entry.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None


def read_file(path: str) -> bytes:
    """The whole of a small file, read without the buffer and text objects ``open`` builds
    (Init reads two this way)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# == pipeline ==============================================================================
# From raw Telemetry API bodies to exporters: spool, decode, filter, export in budget.
#
# - ``accept`` (listener thread, and call spans) only appends bytes to each
#   exporter's spool and to an in-memory queue: no parsing on the caller's time.
# - ``submit`` (the supervisor's own records, on the handler's thread) only queues the
#   ``TelemetryEvent`` itself, or what the invocation record will be made of
#   (``instruments.InvocationRecord``): no serialisation, no write. ``spool_own`` makes
#   and serialises what was queued into the spools, on the listener's thread when the
#   platform's next batch arrives (``receive``) and at the start of every flush; the
#   objects themselves go to the exporters, never decoded. Without Telemetry API batches, a record is
#   durable from the next flush on (each invocation when traffic is sparse, at most
#   ``FlushPolicy``'s interval when it is dense).
# - ``flush`` (extension thread) decodes each batch once, skips the toolkit's own
#   lines (they come back as ``function`` records), and gives every exporter whose
#   circuit breaker is closed what it has not delivered yet, within one time budget.
#   What does not make it stays in the spool for the next flush or the next Init.
# - Log records of a type no exporter reads (``Exporter.telemetry_types``: EMF reads
#   no ``function`` record) are counted, never turned into events; a batch holding
#   nothing else is not even parsed.


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
# How long a flush that is not racing a shutdown pauses at each of those points:
# ``sleep(0)`` releases the GIL but the waiting listener need not be the thread that
# takes it, and a platform POST left unanswered past the subscription's ``timeoutMs``
# makes the platform drop the next batch. A shutdown's flush gives every moment to
# exporting.
LISTENER_TURN_S = 0.0002


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written: a write may take only part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def let_the_listener_in(deadline: float) -> None:
    """Hand the GIL over between steps of a flush that must end by ``deadline``."""
    time.sleep(LISTENER_TURN_S if deadline == float("inf") else 0)
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
_FUNCTION_TYPE_MARKS = (b'"type":"function"', b'"type": "function"')
_TYPE_KEY = b'"type"'


def count_function_records(body: bytes, records: int | None = None) -> int:
    """``function`` events in a raw body, without parsing it (for loss counts by type).

    Given the body's ``records`` (``count_records``), the spaced mark is looked for only
    while the compact one, the platform's, leaves records unaccounted for: a batch of log
    lines alone, the bulk of a heavy logger's, is scanned once rather than twice.
    """
    compact, spaced = _FUNCTION_TYPE_MARKS
    functions = body.count(compact)
    if records is None or functions < records:
        functions += body.count(spaced)
    return functions


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


def event_type(event: TelemetryEvent | bytes) -> str:
    """An event's ``type``; a log line left as the bytes of its entry is one as well
    (``log_lines.decode_verbatim``)."""
    if type(event) is bytes:
        from ..log_lines import verbatim_type  # loaded already where such lines are made

        return verbatim_type(event)
    return event.type  # type: ignore[union-attr]


def count_functions(events: Sequence[TelemetryEvent | bytes]) -> int:
    """How many of ``events`` are ``function`` log lines (a flush counts each part of a
    large batch it sends: one pass, no call per event)."""
    kinds = [None if type(event) is bytes else event.type for event in events]  # type: ignore[union-attr]
    functions = kinds.count("function")
    if None in kinds:
        from ..log_lines import count_function_entries  # loaded already where such lines are made

        functions += count_function_entries([event for event in events if type(event) is bytes])
    return functions


def count_by_type(
    events: Iterable[TelemetryEvent | bytes], into: dict[str, int] | None = None
) -> dict[str, int]:
    """Events per ``type`` (``function``, ``platform.report``...), added to ``into``.

    Every drop is reported by type as well as in total, so that lost log lines can be
    matched with counted log lines rather than with any events that happened to go.
    """
    counts = {} if into is None else into
    for event in events:
        kind = event_type(event)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


class Channel:
    """One exporter with its spool, breaker and the decoded batches it still owes."""

    def __init__(self, exporter: Exporter, spool: Spool) -> None:
        self.exporter = exporter
        self.spool = spool
        # Made by the first failed delivery, dropped by the next success: a breaker that
        # has not failed since the last success allows every call.
        self.breaker: CircuitBreaker | None = None
        self.pending: collections.deque[tuple[int, list[TelemetryEvent]]] = collections.deque()
        self.reported_drops = 0
        self.reported_drop_bytes = 0
        # Events of the batches the spool dropped on overflow, per type (a running total).
        self.overflow_by_type: dict[str, int] = {}
        self.reported_overflow_events = 0
        self.reported_unspooled = 0
        self.local = exporter.local
        # Spools a platform batch without its log lines, where it can be taken apart.
        self.skips_log_lines = not LOG_TYPES.intersection(exporter.telemetry_types)
        # (spool seq, body bytes, records, function records) of each batch not yet
        # delivered: what the held-bytes cap and a loss count read.
        self.held: collections.deque[tuple[int, int, int, int]] = collections.deque()
        self.held_bytes = 0
        # The events of the export call running now, if any (under the held lock): what
        # a loss count made beside it cannot tell delivered from lost.
        self.in_flight: list[TelemetryEvent] | None = None
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
        # What the pipeline has counted: a namespace of counters rather than a class of its
        # own (a class costs Init more than all its uses), since only their values are read.
        self.stats = SimpleNamespace(
            events=0,
            delivered=0,
            malformed_batches=0,
            malformed_entries=0,
            own_lines_skipped=0,
            unread_records=0,  # of a type no exporter reads: not decoded
            export_failures=0,
            rejected_events=0,
        )
        read = {kind for exporter in exporters for kind in exporter.telemetry_types}
        self.unread_types = frozenset(kind for kind in LOG_TYPES if kind not in read)
        self._unread_marks = tuple(b'"type":"%s"' % kind.encode() for kind in sorted(self.unread_types))
        # Only our own EMF lines are skipped; the user's EMF metrics are their logs.
        self.emf_namespaces = set(emf_namespaces)
        # The decoder of a parsed batch, chosen here once: where no exporter reads log
        # lines, one that only counts them, so that their decoding is not even loaded.
        self._decode_items: Callable[[list[object]], DecodedBatch] = decode_platform_events
        # Where every exporter that reads log lines takes them as they came, a batch that
        # allows it is not decoded but split (``log_lines.decode_verbatim``).
        self._decode_verbatim: Callable[[bytes], DecodedBatch | None] | None = None
        if self.unread_types != LOG_TYPES:
            from ..log_lines import decode_events, decode_verbatim

            self._decode_items = functools.partial(decode_events, unread_types=self.unread_types,
                                                   skip_own=True, emf_namespaces=self.emf_namespaces)
            if all(e.verbatim_log_lines for e in exporters if LOG_TYPES.intersection(e.telemetry_types)):
                self._decode_verbatim = functools.partial(decode_verbatim, unread_types=self.unread_types,
                                                          emf_namespaces=self.emf_namespaces)
        # An exporter that reads no log line beside one that does (EMF beside the file
        # exporter): its spool gets the batch without them, so that a chatty function's
        # lines are written to /tmp once, not once per exporter, before the listener answers.
        self._without_log_lines: Callable[[bytes], bytes | None] | None = None
        if self.unread_types != LOG_TYPES and any(channel.skips_log_lines for channel in self.channels):
            from ..log_lines import without_log_lines

            self._without_log_lines = without_log_lines
        # (body, spool sequence numbers, arrival time, own events or None for a body to
        # decode, what to amend in each own event, its record count, whether the channels
        # that read no log line spooled it without them)
        self._incoming: collections.deque[
            tuple[bytes, list[int], float, list[TelemetryEvent] | None, list[Amend | None], int, bool]
        ] = collections.deque()
        # Own records submitted and not yet spooled (appended and taken without a lock:
        # deque's append and popleft are atomic).
        self._own: collections.deque[tuple[TelemetryEvent | InvocationRecord, Amend | None]] = (
            collections.deque())
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
        # Which source reports each invocation (``instruments.SourceArbiter``),
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
                from .failures import PipelineFull  # refused: never on the default lifecycle

                raise PipelineFull("telemetry pipeline is full" if self._accepting else "shutting down")
            else:
                late = False
                self._store(body, None, [])
        if late:
            from .failures import count_late  # after the loss report: not on the default lifecycle

            count_late(self, body)

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

    def submit(self, event: TelemetryEvent | InvocationRecord, amend: Amend | None = None) -> None:
        """Queue one of the toolkit's own records, as it is; it goes out with the next flush.

        Nothing is made, serialised or written here (the handler's thread): ``spool_own``
        does that off the handler's path. An event that is not yet a ``TelemetryEvent`` is
        made into one there (``to_event``, given the listener lag as of then). ``amend``, if
        given, runs on a list holding just this event, which it may change or extend,
        before any exporter sees it (the spooled copy keeps the record as submitted). An
        event whose ``time`` is empty gets it there from its ``epoch_ms``.
        """
        self._own.append((event, amend))

    def spool_own(self) -> None:
        """Serialise the own records submitted so far into every spool, as one batch."""
        own = self._own
        events: list[TelemetryEvent] = []
        amends: list[Amend | None] = []
        while own:
            try:
                submitted, amend = own.popleft()
            except IndexError:  # another thread took the last one
                break
            if isinstance(submitted, TelemetryEvent):
                event = submitted
            else:
                event = submitted.to_event(self.listener_lag_ms)
            if not event.time and event.epoch_ms is not None:
                event.time = iso_time(event.epoch_ms / 1000.0)
            events.append(event)
            amends.append(amend)
        if not events:
            return
        body = _ENCODER.encode([event.to_output() for event in events]).encode()
        with self._held_lock:
            self._store(body, events, amends)

    def _store(self, body: bytes, events: list[TelemetryEvent] | None, amends: list[Amend | None]) -> None:
        reduced = None
        if self._without_log_lines is not None and events is None:
            reduced = self._without_log_lines(body)
            reduced_records = 0 if reduced is None else count_records(reduced)
        size, records = len(body), count_records(body)
        functions = count_function_records(body, records)
        seqs = []
        for channel in self.channels:
            if reduced is not None and channel.skips_log_lines:
                seq = channel.spool.append(reduced)
                channel.held.append((seq, len(reduced), reduced_records, 0))
                channel.held_bytes += len(reduced)
            else:
                seq = channel.spool.append(body)
                channel.held.append((seq, size, records, functions))
                channel.held_bytes += size
            seqs.append(seq)
        self._incoming.append((body, seqs, time.time(), events, amends, records, reduced is not None))
        self.unflushed_bytes += len(body)

    def held_bytes(self) -> int:
        """Bytes received but not yet delivered by the exporter furthest behind."""
        with self._held_lock:
            return self._held_locked()

    def largest_step_records(self) -> int:
        """Records in the largest single step a flush may be inside when told to stop: the
        decode of one received batch, or one export call (no larger than what is held)."""
        with self._held_lock:
            self._held_locked()
            decode = max((entry[5] for entry in self._incoming if entry[3] is None), default=0)
            export = max((channel.call_limit for channel in self.channels), default=0)
            held = max((sum(entry[2] for entry in channel.held) for channel in self.channels), default=0)
            return max(decode, min(export, held))

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
                    records = count_records(body)
                    channel.held.append((seq, len(body), records, count_function_records(body, records)))
                    channel.held_bytes += len(body)
                channel.pending.append((seq, self._decode(body, recovered=True)))
                count += 1
        return count

    @property
    def pending_batches(self) -> int:
        # Read at the end of every invocation: a loop, not max() over a generator.
        most = 0
        for channel in self.channels:
            if len(channel.pending) > most:
                most = len(channel.pending)
        return len(self._own) + len(self._incoming) + most

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
                let_the_listener_in(self._finish_by)
                yielded = now
            body, seqs, arrived, own, amends, _records, reduced = self._incoming.popleft()
            decoded: list[TelemetryEvent] | None = None  # ``events`` less any verbatim lines
            if own is None:
                events = self._decode(body)
                if events:
                    last = events[-1]
                    if type(last) is bytes:
                        from ..log_lines import entry_time  # loaded already where such lines are made

                        epoch_ms = parse_time_ms(entry_time(last))
                    else:
                        epoch_ms = last.epoch_ms
                    if epoch_ms is not None:
                        self.listener_lag_ms = max(0.0, arrived * 1000.0 - epoch_ms)
                if self._decode_verbatim is not None:
                    decoded = [event for event in events if type(event) is not bytes]
                    if len(decoded) == len(events):
                        decoded = None
                if arbiter is not None:
                    # The platform's records are in its batches only: ours hold our own
                    # records and self records, which the arbiter always keeps.
                    if decoded is None:
                        events = arbiter.filter(events)
                    else:
                        kept = arbiter.filter(decoded)
                        if len(kept) != len(decoded):
                            kept_ids = {id(event) for event in kept}
                            events = [e for e in events if type(e) is bytes or id(e) in kept_ids]
                        decoded = kept
            else:
                events = amended(own, amends)
                self.stats.events += len(events)
            platform_only: list[TelemetryEvent] | None = None
            for channel, seq in zip(self.channels, seqs, strict=True):
                if reduced and channel.skips_log_lines:
                    # What its spool holds of the batch: the platform's records.
                    if platform_only is None:
                        platform_only = [e for e in (events if decoded is None else decoded)
                                         if type(e) is not bytes and e.type.startswith("platform.")]
                    channel.pending.append((seq, platform_only))
                elif decoded is not None and not channel.exporter.verbatim_log_lines:
                    channel.pending.append((seq, decoded))
                else:
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
        batch = None
        if self._decode_verbatim is not None and not recovered:
            batch = self._decode_verbatim(body)
        try:
            if batch is None:
                batch = self._decode_items(parse_batch(body))
        except ValueError as error:
            from ..malformed import UnreadableBatch  # unreadable input: never on the default lifecycle

            if not isinstance(error, UnreadableBatch):
                raise
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
        while (channel.pending and (channel.breaker is None or channel.breaker.allows())
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
            if split:
                events = take[0][1]  # a part is a list of its own already
            else:
                events = []
                for _, batch in take:
                    events += batch
            with self._held_lock:
                if self._loss_reason is not None:  # counted already: not sent as well
                    self._keep(channel, take, split)
                    break
                channel.in_flight = events
            try:
                if events:
                    channel.exporter.export(events, deadline)
            except Exception as error:  # ExportError, or an exporter's bug: never lose the batch silently
                channel.in_flight = None
                from .failures import delivery_failed  # no delivery fails on the default lifecycle

                delivery_failed(self, channel, take, error, split)
                break
            # Delivered and no longer in flight in one step for a loss count beside it.
            with self._held_lock:
                channel.in_flight = None
                if split:
                    self._part_done(channel, take[0])
                else:
                    channel.spool.delivered(take[-1][0])
            channel.breaker = None  # closed: the failures before this success no longer count
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
            emit("warning", "export_backlog_dropped",
                             f"{channel.name} is behind: dropped the {dropped} oldest events it owed",
                             exporter=channel.name, dropped=dropped, droppedByType=by_type)

    @staticmethod
    def _part_done(channel: Channel, part: tuple[int, list[TelemetryEvent]]) -> None:
        seq, events = part
        before = channel.partial if channel.partial is not None and channel.partial[0] == seq else (seq, 0, 0)
        functions = count_functions(events)
        channel.partial = (seq, before[1] + len(events), before[2] + functions)

    @staticmethod
    def _keep(channel: Channel, take: list[tuple[int, list[TelemetryEvent]]], split: bool) -> None:
        """Put ``take`` back at the head of ``pending``, a part back into its batch."""
        if split:
            seq, part = take[0]
            channel.pending[0] = (seq, part + channel.pending[0][1])
        else:
            channel.pending.extendleft(reversed(take))

    def _report_drops(self) -> None:
        for channel in self.channels:
            spool = channel.spool
            if spool.unspooled_batches != channel.reported_unspooled:
                channel.reported_unspooled = spool.unspooled_batches
                emit("warning", "spool_batch_too_large",
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
                emit("warning", "spool_overflow",
                                 f"{channel.name} spool is full: dropped the oldest batches",
                                 exporter=channel.name, droppedRecords=spool.dropped_records,
                                 droppedBatches=spool.dropped_batches,
                                 droppedByType=dict(channel.overflow_by_type))

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
        # that the count goes out beside it: a flush that has not begun its next export
        # call sends nothing more, and the call it is inside is reported as in flight.
        locked = self._acquire_flush_lock(deadline - LOSS_REPORT_TIME_S)
        try:
            for channel in self.channels:
                with self._held_lock:
                    self._held_locked()
                    held = list(channel.held)
                    channel.held.clear()
                    channel.held_bytes = 0
                    flying = channel.in_flight or []
                channel.pending.clear()
                if not held:
                    continue
                channel.spool.delivered(held[-1][0])
                records = sum(entry[2] for entry in held)
                functions = sum(entry[3] for entry in held)
                if channel.partial is not None and channel.partial[0] == held[0][0]:
                    records -= channel.partial[1]
                    functions -= channel.partial[2]
                # The export call still running when the count is made delivers its
                # events if the process lives long enough: neither counted as lost nor as
                # delivered, they are reported apart.
                flying_functions = count_functions(flying)
                records -= len(flying)
                functions -= flying_functions
                by_type = {"function": functions, "other": records - functions}
                loss: dict[str, object] = {"droppedRecords": records,
                                           "droppedBytes": sum(e[1] for e in held),
                                           "droppedByType": by_type, "reason": reason}
                if flying:
                    loss["inFlightRecords"] = len(flying)
                    loss["inFlightByType"] = {"function": flying_functions,
                                              "other": len(flying) - flying_functions}
                losses[channel.name] = loss
            self._incoming.clear()
            if losses:
                total = sum(int(str(loss["droppedRecords"])) for loss in losses.values())
                flying_total = sum(int(str(loss.get("inFlightRecords", 0))) for loss in losses.values())
                also = f"; {flying_total} more were being exported at that moment" if flying_total else ""
                emit("warning", "records_lost",
                                 f"{total} telemetry records received but not exported ({reason}){also}",
                                 reason=reason, exporters=losses)
            for channel in self.channels:
                reported = losses.get(channel.name)
                if reported is not None and (channel.local or time.monotonic() < deadline):
                    self._export_loss(channel, reported, deadline)
        finally:
            if locked:
                self._release_flush_lock()
        return losses

    def _export_loss(self, channel: Channel, loss: dict[str, object], deadline: float) -> None:
        try:
            channel.exporter.export([own_event(LOSS, {**loss, "exporter": channel.name})], deadline)
        except Exception:  # the stderr line already said it
            pass


# == registry ==============================================================================
# Build the exporters the settings ask for, and the telemetry types they need.
#
# The extension subscribes only to what the enabled exporters use, so function logs
# cost nothing unless something exports them.


def build_exporters(settings: Settings) -> list[Exporter]:
    exporters: list[Exporter] = []
    for name in settings.exporters:
        try:
            exporter = _build(name, settings)
        except Exception as exc:
            emit("warning", "exporter_disabled", f"the {name} exporter is disabled: {exc}",
                             exporter=name)
            continue
        if exporter is not None:  # None: its settings were invalid, already reported
            exporters.append(exporter)
    return exporters


def telemetry_types(settings: Settings, exporters: list[Exporter]) -> list[str]:
    if settings.telemetry_types:
        return list(settings.telemetry_types)
    wanted: dict[str, None] = {}
    for exporter in exporters:
        wanted.update(dict.fromkeys(exporter.telemetry_types))
    return list(wanted) or ["platform"]


def _build(name: str, settings: Settings) -> Exporter | None:
    """The exporter ``name`` configured from ``settings``; None when one of its settings
    was invalid (``Settings`` switched it off and already said so in one line).
    Raises ValueError when the exporter cannot work, with a message fit to print."""
    if not settings.feature_enabled(f"the {name} exporter"):
        return None
    if name == "file":
        from .file import FileExporter

        assert settings.file_path is not None
        return FileExporter(settings.file_path)
    if name == "emf":
        from .emf import EmfExporter

        return EmfExporter(settings.emf_namespace, settings.emf_dimensions)
    if name == "http":
        if settings.http_endpoint is None:
            raise ValueError("LAMBDA_WRAPPER_HTTP_ENDPOINT is not set")
        from .http_json import HttpJsonExporter

        return HttpJsonExporter(settings.http_endpoint, settings.http_headers)
    if name == "otlp":
        from .otlp import OtlpExporter

        otlp = OtlpExporter.from_settings(settings)
        if not otlp.signals:
            raise ValueError("every OTLP signal was switched off by an invalid setting (see above)")
        return otlp
    if name == "xray":
        from .xray import XrayExporter, daemon_address

        return XrayExporter(daemon_address(os.environ))
    raise ValueError(f"exporter {name!r} is not implemented yet")
