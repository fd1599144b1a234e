"""The crash-safe spool: durability across a killed process, overflow accounting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lambda_wrapper.export.spool import Spool, read_segment


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


def test_overflow_drops_oldest_counts_and_never_exceeds_cap(tmp_path: Path) -> None:
    cap = 256 * 1024
    spool = Spool(str(tmp_path), max_bytes=cap)
    for i in range(400):
        spool.append(batch(i, 20))
        on_disk = sum(os.path.getsize(os.path.join(spool.directory, f)) for f in os.listdir(spool.directory))
        assert on_disk <= cap + 512 * 1024  # at most one segment beyond the cap while it fills
    assert spool.size_bytes <= cap + 512 * 1024
    assert spool.dropped_batches > 0
    assert spool.dropped_records == 20 * spool.dropped_batches


def test_orphan_of_killed_process_is_recovered_once(tmp_path: Path) -> None:
    code = (
        "import sys, os\n"
        "from lambda_wrapper.export.spool import Spool\n"
        f"s = Spool({str(tmp_path)!r}, 1 << 20)\n"
        "for i in range(5): s.append(b'[\"%d\"]' % i)\n"
        "s.delivered(2)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code])
    assert result.returncode == -9
    survivor = Spool(str(tmp_path), 1 << 20)
    recovered = survivor.recover_orphans()
    assert [body for _, body in recovered] == [b'["2"]', b'["3"]', b'["4"]']
    assert survivor.recover_orphans() == []  # the orphan is gone; its data lives in the survivor now


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 1 << 20)
    spool.append(b"[1]")
    segment = next(p for p in Path(spool.directory).iterdir() if p.suffix == ".seg")
    with open(segment, "ab") as handle:
        handle.write(b"2 100\n[trunc")
    assert [body for _, body in read_segment(str(segment))] == [b"[1]"]
