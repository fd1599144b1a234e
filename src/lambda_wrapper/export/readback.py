"""Reading back what the spool and the in-flight marker wrote for crash safety.

On the default lifecycle both are only written: every batch is appended to the
spool, every invocation marks its slot. They are read when something went wrong:
a process died and left them behind (the next Init recovers its undelivered batches
and reports the invocation it was running), or the spool overflowed (the batches of
the segment it drops are counted). So Init does not load this module: the spool and
the marker import it when they find another process's files or run out of room.
"""

from __future__ import annotations

import os

from . import IN_FLIGHT_SLOT, RUNNING, list_directory

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from . import InFlightMarker, Spool


def recover_spools(spool: Spool, names: list[str]) -> list[tuple[int, bytes]]:
    """The undelivered batches of the dead processes among ``names`` (directories beside
    ``spool``'s own), oldest first, appended to ``spool`` before each dead spool is deleted."""
    recovered: list[tuple[int, bytes]] = []
    for name in sorted(names):
        if owner_alive(name):
            continue
        directory = os.path.join(spool.root, name)
        cursor = read_cursor(os.path.join(directory, "cursor"))
        for segment in sorted(f for f in list_directory(directory) if f.endswith(".seg")):
            for seq, body in read_segment(os.path.join(directory, segment)):
                if seq > cursor:
                    recovered.append((spool.append(body), body))
        remove_tree(directory)
    return recovered


def dead_invocations(marker: InFlightMarker, names: list[str]) -> list[tuple[str, float, bool | None]]:
    """The invocations the dead processes among ``names`` (marker files beside ``marker``'s
    own) were running: (request id, start epoch s, whether the cgroup saw an out-of-memory
    kill since, None where unknown). Each dead process's file is deleted."""
    found = []
    for name in names:
        if owner_alive(name):
            continue
        path = os.path.join(marker.root, name)
        try:
            with open(path, "rb") as handle:
                fields = handle.read(IN_FLIGHT_SLOT).split(b"\n", 1)[0].split()
            os.unlink(path)
        except OSError:
            continue
        if len(fields) != 4 or fields[0] != RUNNING or not fields[1].isdigit():
            continue  # ended, or never began one
        then = int(fields[2]) if fields[2].lstrip(b"-").isdigit() else -1
        oom = None if then < 0 or marker.oom_kills is None else marker.oom_kills > then
        request_id = fields[3].decode("ascii", "replace")
        found.append((request_id, int(fields[1]) / 1000.0, oom))
    return found


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


def owner_alive(directory_name: str) -> bool:
    """Whether the process that named a spool directory or marker file is alive."""
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


def read_cursor(path: str) -> int:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def remove_tree(directory: str) -> None:
    for name in list_directory(directory):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass
