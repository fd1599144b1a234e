"""The crash-safe spool: durability across a killed process, overflow accounting."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_wrapper.export import Spool
from lambda_wrapper.export.readback import read_segment


def batch(index: int, events: int = 1) -> bytes:
    return json.dumps(
        [
            {"time": "2024-01-01T00:00:00.000Z", "type": "function", "record": f"{index}.{i}"}
            for i in range(events)
        ]
    ).encode()


def test_append_deliver_reclaims_segments(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=10 * 1024 * 1024)
    seqs = [spool.append(batch(i, 200)) for i in range(100)]
    assert seqs == list(range(1, 101))
    before = spool.size_bytes
    spool.delivered(90)
    assert spool.size_bytes < before
    remaining = [
        seq
        for seg in sorted(os.listdir(spool.directory))
        if seg.endswith(".seg")
        for seq, _ in read_segment(os.path.join(spool.directory, seg))
    ]
    assert remaining and min(remaining) <= 91 and max(remaining) == 100


def spool_disk_bytes(spool: Spool) -> int:
    """Everything the spool has on disk: segments, cursor and a cursor being replaced."""
    total = 0
    for name in os.listdir(spool.directory):
        with contextlib.suppress(FileNotFoundError):
            total += os.path.getsize(os.path.join(spool.directory, name))
    return total


def body_for_entry(seq: int, entry_bytes: int) -> bytes:
    """A batch whose spool entry (header, body, newline) is exactly ``entry_bytes`` long."""
    length = entry_bytes - len(f"{seq} \n\n")
    while len(f"{seq} {length}\n") + length + 1 > entry_bytes:
        length -= 1
    record = b'[{"time":"2024-01-01T00:00:00.000Z","record":"'
    return record + b"x" * (length - len(record) - 3) + b'"}]'


CAP = 256 * 1024


@pytest.mark.parametrize(
    "shape",
    # The last two fill the segments, and so the cap, to the byte.
    ["small batches", "entries of a quarter of the cap", "entries of an eighth of the cap"],
)
def test_overflow_drops_oldest_counts_and_never_exceeds_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    spool = Spool(str(tmp_path), max_bytes=CAP)
    peaks: list[int] = []
    real_write = os.write

    def write_then_measure(fd: int, data: bytes) -> int:
        written = real_write(fd, data)
        peaks.append(spool_disk_bytes(spool))
        return written

    # Measured at every write too: the cap holds while appending, not just between calls.
    monkeypatch.setattr(os, "write", write_then_measure)
    events = 20
    for i in range(1, 401):
        if shape == "small batches":
            body = batch(i, events)
        elif shape == "entries of a quarter of the cap":
            body = body_for_entry(i, CAP // 4)
            events = 1
        else:
            body = body_for_entry(i, CAP // 8)
            events = 1
        assert spool.append(body) == i
        if i == 1:
            spool.delivered(1)  # a cursor file on disk from now on
        peaks.append(spool_disk_bytes(spool))
        assert peaks[-1] <= CAP, f"spool holds {peaks[-1]} B after batch {i}, cap {CAP} B"
    monkeypatch.undo()
    assert max(peaks) <= CAP
    assert spool.size_bytes <= CAP
    on_disk = sorted(
        seq
        for name in os.listdir(spool.directory)
        if name.endswith(".seg")
        for seq, _ in read_segment(os.path.join(spool.directory, name))
    )
    # The newest batches are the ones kept, with no gap.
    assert on_disk == list(range(on_disk[0], 401))
    # Every batch that went was undelivered (all but the first), and each is counted.
    assert on_disk[0] > 2
    assert spool.dropped_batches == on_disk[0] - 2
    assert spool.dropped_records == events * spool.dropped_batches
    assert spool.unspooled_batches == 0


def test_batch_bigger_than_the_cap_stays_off_disk_and_is_counted(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=CAP)
    kept = spool.append(batch(1, 20))
    spool.append(body_for_entry(2, CAP + 1))
    assert spool.unspooled_batches == 1
    assert spool_disk_bytes(spool) <= CAP
    assert spool.dropped_batches == 0  # what was spooled before it is still there
    entries = [
        seq
        for name in os.listdir(spool.directory)
        if name.endswith(".seg")
        for seq, _ in read_segment(os.path.join(spool.directory, name))
    ]
    assert entries == [kept]


@pytest.mark.parametrize("deliveries", [(2,), (1, 2), (9, 10, 11, 12)])
def test_orphan_of_killed_process_is_recovered_once(tmp_path: Path, deliveries: tuple[int, ...]) -> None:
    code = (
        "import sys, os\n"
        "from lambda_wrapper.export import Spool\n"
        f"s = Spool({str(tmp_path)!r}, 1 << 20)\n"
        "for i in range(15): s.append(b'[\"%d\"]' % i)\n"
        f"for seq in {deliveries!r}: s.delivered(seq)\n"  # the cursor rewritten in place each time
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code])
    assert result.returncode == -9
    survivor = Spool(str(tmp_path), 1 << 20)
    recovered = survivor.recover_orphans()
    assert [body for _, body in recovered] == [b'["%d"]' % i for i in range(deliveries[-1], 15)]
    assert survivor.recover_orphans() == []  # the orphan is gone; its data lives in the survivor now


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 1 << 20)
    spool.append(b"[1]")
    segment = next(p for p in Path(spool.directory).iterdir() if p.suffix == ".seg")
    with open(segment, "ab") as handle:
        handle.write(b"2 100\n[trunc")
    assert [body for _, body in read_segment(str(segment))] == [b"[1]"]
