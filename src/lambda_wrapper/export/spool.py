"""A bounded, crash-safe spool of telemetry batches under /tmp, one per exporter.

Every batch the listener acknowledged is appended here before anything else looks at
it, so a runtime killed mid-invocation (SIGKILL, out-of-memory, timeout) loses
nothing: the next Init finds the dead process's spool and exports what it holds.
Each exporter has its own spool, so one exporter being down never makes another
re-send, and each spool needs one cursor only. Past the size cap the oldest segment
goes, and every record in it that was not delivered is counted as dropped.

Layout: ``<tmp>/lambda-wrapper/spool/<exporter>/<pid>-<start ns>/`` holding segment
files named by their first sequence number, each a run of ``<seq> <length>\\n<body>\\n``
entries, and ``cursor``: the last delivered sequence number, space-padded to
``CURSOR_BYTES`` and rewritten in place by one ``pwrite``, which a killed process
cannot tear (the numbers only grow, so no longer one is ever left behind), at a
hundredth of the cost of replacing a file, once per export call.
"""

from __future__ import annotations

import os
import threading
import time

SEGMENT_BYTES = 512 * 1024
CURSOR_BYTES = 20  # digits of the largest sequence number, space-padded
# The cap covers the cursor file too, so segments get the cap minus this.
CURSOR_FILES_BYTES = 2 * CURSOR_BYTES


class _Segment:
    __slots__ = ("first", "last", "path", "size")

    def __init__(self, first: int, path: str) -> None:
        self.first = first
        self.last = first - 1
        self.path = path
        self.size = 0


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
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._cursor_fd: int | None = None
        self._bytes = 0
        self._lock = threading.Lock()  # the listener and the supervisor both append

    def append(self, body: bytes) -> int:
        """Store one batch; it survives the process (``/tmp`` outlives a killed runtime)."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            entry = b"%d %d\n%s\n" % (seq, len(body), body)
            if len(entry) > self._segment_capacity:
                # Bigger than the whole cap: it cannot be kept on disk. It is still
                # exported from memory; only its crash safety is lost, and counted.
                self.unspooled_batches += 1
                return seq
            # Room first, so the spool never holds more than the cap, even briefly.
            self._make_room(len(entry))
            # Overflow drops whole segments: one may not hold more than a share of the cap.
            limit = min(SEGMENT_BYTES, self._segment_capacity // 4)
            if self._fd is None or self._segments[-1].size + len(entry) > limit:
                self._open_segment(seq)
            assert self._fd is not None
            os.write(self._fd, entry)
            segment = self._segments[-1]
            segment.size += len(entry)
            segment.last = seq
            self._bytes += len(entry)
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
        recovered: list[tuple[int, bytes]] = []
        for name in sorted(_listdir(self.root)):
            directory = os.path.join(self.root, name)
            if directory == self.directory or _owner_alive(name):
                continue
            cursor = _read_cursor(os.path.join(directory, "cursor"))
            for segment in sorted(f for f in _listdir(directory) if f.endswith(".seg")):
                for seq, body in read_segment(os.path.join(directory, segment)):
                    if seq > cursor:
                        recovered.append((self.append(body), body))
            _remove_tree(directory)
        return recovered

    # -- internals ----------------------------------------------------------------
    def _open_segment(self, seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = os.path.join(self.directory, f"{seq:012d}.seg")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments.append(_Segment(seq, path))

    def _make_room(self, incoming: int) -> None:
        while self._bytes + incoming > self._segment_capacity and self._segments:
            if len(self._segments) == 1 and self._fd is not None:
                os.close(self._fd)  # dropping the segment being written: start a new one
                self._fd = None
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


def read_segment(path: str) -> list[tuple[int, bytes]]:
    """Entries of one segment; a torn tail (killed mid-write) is ignored."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return []
    entries = []
    position = 0
    while position < len(data):
        header_end = data.find(b"\n", position)
        if header_end < 0:
            break
        try:
            seq_text, length_text = data[position:header_end].split(b" ")
            seq, length = int(seq_text), int(length_text)
        except ValueError:
            break
        body_end = header_end + 1 + length
        if body_end + 1 > len(data):
            break
        entries.append((seq, data[header_end + 1:body_end]))
        position = body_end + 1
    return entries


def count_records(body: bytes) -> int:
    # Good enough for a drop counter without parsing: one "time" key per event.
    return max(1, body.count(b'"time"'))


def _owner_alive(directory_name: str) -> bool:
    pid_text = directory_name.split("-", 1)[0]
    if not pid_text.isdigit():
        return True  # not ours: leave it alone
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # same pid, other start time: a previous life of this pid
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` names a live process (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_cursor(path: str) -> int:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _remove_tree(directory: str) -> None:
    for name in _listdir(directory):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


IN_FLIGHT_SLOT = 128  # bytes: "<state> <epoch ms> <oom kills> <request id>", space-padded
RUNNING, ENDED = b"R", b"-"


class InFlightMarker:
    """Which invocation this process is running, kept in a file beside the spool so that
    the next Init can tell that a process died in the middle of one.

    One fixed-size slot rewritten in place: ``begin`` writes ``R <start epoch ms> <oom
    kills at Init> <request id>`` and a newline (what follows it is stale), ``end``
    overwrites its first byte with ``-``. The slot
    is a shared mapping of the file, so each is a store into memory on the handler's
    thread, no system call (a ``pwrite`` also updates the file's times, which costs a
    journal entry on a disk file system); the page cache keeps what was stored when the
    process dies, whatever kills it. The cgroup's
    ``oom_kill`` counter, read once at Init where the function can read it, lets the
    next Init tell an out-of-memory kill (the counter grew) from any other death; where
    it cannot be read, every death is just a death.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.path = os.path.join(root, f"{os.getpid()}-{time.time_ns()}")
        self.oom_kills = oom_kill_count()
        self._oom_text = b"-1" if self.oom_kills is None else b"%d" % self.oom_kills
        import mmap

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.pwrite(fd, ENDED.ljust(IN_FLIGHT_SLOT), 0)
            self._slot = mmap.mmap(fd, IN_FLIGHT_SLOT)
        finally:
            os.close(fd)

    def begin(self, request_id: str, started_epoch_s: float) -> None:
        slot = b"R %d %s %s\n" % (int(started_epoch_s * 1000), self._oom_text, request_id.encode())
        if len(slot) > IN_FLIGHT_SLOT:
            slot = slot[:IN_FLIGHT_SLOT - 1] + b"\n"
        self._slot[:len(slot)] = slot

    def end(self) -> None:
        self._slot[0] = ENDED[0]

    def recover_orphans(self) -> list[tuple[str, float, bool | None]]:
        """Invocations that dead processes were running: (request id, start epoch s,
        whether the cgroup saw an out-of-memory kill since, None where unknown)."""
        found = []
        for name in _listdir(self.root):
            path = os.path.join(self.root, name)
            if path == self.path or _owner_alive(name):
                continue
            try:
                with open(path, "rb") as handle:
                    fields = handle.read(IN_FLIGHT_SLOT).split(b"\n", 1)[0].split()
                os.unlink(path)
            except OSError:
                continue
            if len(fields) != 4 or fields[0] != RUNNING or not fields[1].isdigit():
                continue  # ended, or never began one
            then = int(fields[2]) if fields[2].lstrip(b"-").isdigit() else -1
            oom = None if then < 0 or self.oom_kills is None else self.oom_kills > then
            request_id = fields[3].decode("ascii", "replace")
            found.append((request_id, int(fields[1]) / 1000.0, oom))
        return found


def oom_kill_count() -> int | None:
    """The ``oom_kill`` count of this process's memory cgroup (v2 ``memory.events``, v1
    ``memory.oom_control``), where it can be read."""
    try:
        with open("/proc/self/cgroup", encoding="ascii", errors="replace") as groups:
            lines = groups.read().splitlines()
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
            with open(candidate, "rb") as events:
                for entry in events:
                    if entry.startswith(b"oom_kill "):
                        return int(entry.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None
