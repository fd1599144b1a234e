"""The function every variant runs: small, like most handlers, and able to log on demand.

``{"lines": N}`` makes it print N log lines (the telemetry throughput test); any other
event gets a small JSON answer back, which is the warm-latency case.
"""

import json
import sys

LINE_PADDING = "x" * 48


def handler(event, context):
    lines = int(event.get("lines", 0)) if isinstance(event, dict) else 0
    write = sys.stdout.write
    for number in range(lines):
        # One write per line, as print() does: that is what the platform's pipe sees.
        write(f"bench line {number} {LINE_PADDING}\n")
    return {"ok": True, "lines": lines, "size": len(json.dumps(event))}
