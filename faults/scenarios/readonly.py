"""Read-only code dirs: every session ran with ``/var/task`` and ``/opt`` read-only.

Runs after the other families and judges all their sessions: each must have run in
the sandbox's namespace mode (the read-only mounts), with no write warnings and no
write outside ``/tmp`` reported by the functions' audit hook. One more session
proves the mounts are in force: writing into ``/var/task`` and ``/opt`` fails with
EROFS from inside the function, through the wrapper.
"""

from __future__ import annotations

import time

from ..context import Context
from ..harness import session
from ..model import Result


def run(ctx: Context) -> list[Result]:
    result = Result("read-only /var/task and /opt, writes only under /tmp", "readonly")
    started = time.monotonic()
    with session(ctx, result.scenario, env={"LAMBDA_WRAPPER_EXPORTERS": "file"}) as s:
        probe = s.invoke({"mark": "readonly", "probe_read_only": True}).json()
        peak = s.peak_mb
    # The probe's own writes are the point: leave them out of the audit count.
    sessions = [record for record in ctx.sessions if record.scenario != result.scenario]
    host_mode = [record.scenario for record in sessions if not record.namespace_mode]
    warnings = [(record.scenario, w) for record in sessions for w in record.warnings]
    violations = [(record.scenario, v) for record in sessions for v in record.write_violations]
    wrapped = sum(record.wrapped for record in sessions)
    result.saw = f"writes into /var/task, /opt: {probe.get('readOnly')}"
    result.delivered = "n/a"
    result.lost = "n/a"
    result.peak_mb = peak
    result.check(
        "the probe's writes failed with EROFS",
        probe.get("readOnly") == {"/var/task": "EROFS", "/opt": "EROFS"},
    )
    result.check(
        f"all {len(sessions)} sessions ran with the read-only mounts", bool(sessions) and not host_mode
    )
    result.check("no read-only violation warnings from the sandbox", not warnings)
    result.check("no write outside /tmp seen by the audit hook", not violations)
    result.notes.append(f"{len(sessions)} sessions judged ({wrapped} with the wrapper)")
    result.notes.extend(f"{scenario}: {line}" for scenario, line in (warnings + violations)[:20])
    if host_mode:
        result.notes.append(f"host mode (not read-only): {host_mode[:10]}")
    result.seconds = time.monotonic() - started
    return [result]
