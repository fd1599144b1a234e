"""Function faults: each runs without the wrapper and with it, and the two must agree.

Per fault: the faulty invocation, then two ordinary ones. Compared: what the caller
saw (status code, platform status, errorType, errorMessage with ids masked) and
which invocations were cold starts (the environment re-initialises after a crash
exactly when it would without us). With the wrapper (``file`` exporter) the
exported telemetry must give every invocation the platform's status, and the lines
the function printed before it died must be exported after the re-init.

Where the runtime process dies during the faulty invocation, the platform reports
that invocation's status after the process (and the extension's listener in it) is
gone, so no in-process extension can receive it. Those rows say so and check what
can be: the process really was replaced, the platform did report a status, the
invocation's start (or every init attempt) was exported, and so were the statuses
of the invocations after the re-init.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..context import Context
from ..harness import (
    Session,
    caller_view,
    describe_view,
    diagnostics,
    exported_file_records,
    markers,
    session,
)
from ..model import Result, median

OOM_ERROR = "Runtime.OutOfMemory"
PROCESS_GONE = "the runtime process, and the listener in it, is gone before the platform reports the status"
INIT_GONE = "init fails and the runtime process exits before the platform reports the invocation"
LOOP_THREAD = "lambda-wrapper-extension"
LISTENER_THREAD = "lambda-wrapper-listener"
WATCHDOG_THREAD = "lambda-wrapper-watchdog"


@dataclass(frozen=True)
class Fault:
    title: str
    name: str
    event: dict[str, Any] = field(default_factory=dict)
    handler: str = "app.handler"
    timeout_s: float = 3.0
    env: dict[str, str] = field(default_factory=dict)
    init_timeout_s: float = 10.0
    # Why the platform's status for the faulty invocation cannot reach an in-process
    # listener ("" when it can, and then it must be exported).
    status_unreachable: str = ""


def faults(ctx: Context) -> list[Fault]:
    sleep = ctx.form.init_sleep_s
    return [
        Fault("function: raises an exception", "exception", {"fault": "exception"}),
        Fault("function: sys.exit(3)", "sys_exit", {"fault": "sys_exit"}, status_unreachable=PROCESS_GONE),
        Fault("function: os._exit(7)", "os_exit", {"fault": "os_exit"}, status_unreachable=PROCESS_GONE),
        Fault(
            "function: segfault (ctypes)", "segfault", {"fault": "segfault"}, status_unreachable=PROCESS_GONE
        ),
        Fault("function: RecursionError", "recursion", {"fault": "recursion"}),
        Fault("function: timeout (3 s, the default)", "timeout", {"fault": "timeout"}),
        # At 7 % of a CPU, reclaim before the kill can take seconds: 15 s keeps the
        # timeout out of the comparison.
        Fault("function: out of memory at 128 MB", "oom", {"fault": "oom"}, status_unreachable=PROCESS_GONE,
              timeout_s=15.0),
        Fault("function: unserializable return", "unserializable", {"fault": "unserializable"}),
        Fault(
            "function: init error (twice, then fixed)",
            "init_error",
            handler="init_error.handler",
            status_unreachable=INIT_GONE,
        ),
        Fault(
            f"function: init longer than the init timeout ({sleep:.1f} s > {ctx.form.init_timeout_s:.0f} s)",
            "init_slow",
            handler="init_slow.handler",
            timeout_s=sleep + 3.0,
            env={"FAULTS_INIT_SLEEP_S": str(sleep)},
            init_timeout_s=ctx.form.init_timeout_s,
        ),
        # adaptive: the platform waits for the extension's /event/next after each
        # response (the default with a remote exporter), so a dead loop would matter.
        Fault(
            "function: SystemExit in our threads, the listener and the watchdog killed (adaptive flush)",
            "kill_thread",
            {"fault": "kill_extension_thread"},
            # The timeout warning runs the watchdog thread (it never fires: 5 s into 6).
            env={"LAMBDA_WRAPPER_FLUSH": "adaptive", "LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": "1000"},
            timeout_s=6.0,  # the handler keeps hitting the threads for up to 1.5 s
        ),
    ]


def run(ctx: Context) -> list[Result]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda fault: _scenario(ctx, fault), faults(ctx)))


def _session_run(ctx: Context, fault: Fault, wrapper: bool) -> Session:
    env = {"LAMBDA_WRAPPER_EXPORTERS": "file", **fault.env}
    with session(
        ctx,
        fault.title,
        wrapper=wrapper,
        env=env,
        handler=fault.handler,
        timeout_s=fault.timeout_s,
        init_timeout_s=fault.init_timeout_s,
    ) as s:
        s.invoke({"mark": f"{fault.name}.fault", **fault.event})
        s.invoke({"mark": f"{fault.name}.next"})
        s.invoke({"mark": f"{fault.name}.next2"})
    return s


def _scenario(ctx: Context, fault: Fault) -> Result:
    result = Result(fault.title, "function", compared_with_bare="what the caller saw, cold starts, durations")
    started = time.monotonic()
    bare = _session_run(ctx, fault, wrapper=False)
    wrapped = _session_run(ctx, fault, wrapper=True)
    bare_views = [caller_view(r) for r in bare.results]
    views = [caller_view(r) for r in wrapped.results]
    result.saw = describe_view(views[0]) + (" (as without)" if views == bare_views else " (differs)")
    result.check("the caller saw exactly what it sees without the wrapper", views == bare_views)
    if views != bare_views:
        result.notes.append(f"without the wrapper: {bare_views}")
        result.notes.append(f"with the wrapper:    {views}")
    bare_cold = [summary.coldStart for summary in bare.sandbox.invocations]
    cold = [summary.coldStart for summary in wrapped.sandbox.invocations]
    result.check(f"re-initialised exactly when without the wrapper (cold starts {cold})", cold == bare_cold)
    _check_telemetry(result, fault, wrapped)
    if fault.name == "kill_thread":
        _check_threads_hit(result, wrapped)
    pairs = zip(wrapped.durations(), bare.durations(), strict=False)
    result.added_ms = median([w - b for w, b in pairs])
    result.peak_mb = wrapped.peak_mb
    if fault.name == "oom":
        _oom_support(result, bare)
    reinit = [
        (b.initDurationMs, w.initDurationMs)
        for b, w in zip(bare.sandbox.invocations[1:], wrapped.sandbox.invocations[1:], strict=False)
        if b.initDurationMs and w.initDurationMs
    ]
    if reinit:
        # At 128 MB a re-init runs at 7 % of a vCPU, inside the next invocation's timeout.
        result.notes.append(
            "re-init inside the next invocation: "
            + ", ".join(f"{b:.0f} ms without, {w:.0f} ms with the wrapper" for b, w in reinit)
        )
    result.seconds = time.monotonic() - started
    return result


def _check_telemetry(result: Result, fault: Fault, wrapped: Session) -> None:
    records = exported_file_records(wrapped.tmp_dir)
    exported_marks = markers("\n".join(str(r.get("record")) for r in records))
    platform_events = wrapped.sandbox.telemetry_events
    fault_id = wrapped.results[0].request_id
    platform = _status_of(platform_events, fault_id)
    exported = _status_of(records, fault_id)
    if fault.status_unreachable:
        _check_unreachable_status(result, fault, wrapped, records, platform, exported)
    else:
        result.delivered = f"exported status: {exported or 'none'} (platform: {platform})"
        result.check(
            "exported telemetry gives the faulty invocation the platform's status",
            platform is not None and exported == platform,
        )
    later = [
        (_status_of(records, r.request_id), _status_of(platform_events, r.request_id))
        for r in wrapped.results[1:]
    ]
    result.check(
        f"the invocations after the fault have the platform's status exported ({later})",
        all(platform_status is not None and mine == platform_status for mine, platform_status in later),
    )
    printed = markers("\n".join(wrapped.sandbox.function_output))
    if fault.name == "init_error":
        before = {"init-0", "init-1"}
    elif fault.name == "init_slow":
        before = {m for m in printed if m.startswith("slow-init-")}
        inits = sum(e.get("type") == "platform.initStart" for e in platform_events)
        result.check(
            f"the slow init printed its marker at each of its {inits} init attempts ({sorted(before)})",
            inits > 0 and len(before) == inits,
        )
    else:
        before = {f"{fault.name}.fault"}
    # The init faults' handler prints nothing; app.handler marks every invocation.
    wanted = before | ({f"{fault.name}.next"} if fault.handler == "app.handler" else set())
    missing = wanted - exported_marks
    result.lost = f"{len(missing)} of {len(wanted)} lines" + (f": {sorted(missing)}" if missing else "")
    result.check("lines printed before the fault were exported after it", bool(wanted) and not missing)


def _check_unreachable_status(
    result: Result,
    fault: Fault,
    wrapped: Session,
    records: list[dict[str, Any]],
    platform: str | None,
    exported: str | None,
) -> None:
    """The faulty invocation's status cannot be exported (``fault.status_unreachable``):
    check that this is so, and what the extension could record of it."""
    fault_id = wrapped.results[0].request_id
    result.delivered = (
        f"exported status: {exported or 'none'}, impossible: process gone (platform: {platform}); "
        "start and later statuses exported"
    )
    result.notes.append(f"the faulty invocation's status cannot be exported: {fault.status_unreachable}")
    cold = [summary.coldStart for summary in wrapped.sandbox.invocations]
    result.check(
        f"the runtime process was replaced after the fault (cold starts {cold})", len(cold) > 1 and cold[1]
    )
    result.check(
        f"the platform reported a failure for the faulty invocation ({platform})",
        platform is not None and not platform.startswith("success"),
    )
    result.check("an exported status, if any, is the platform's", exported is None or exported == platform)
    if fault.name == "init_error":
        # By event time: a batch re-sent from a dead process's spool may come out twice.
        platform_inits = {
            e.get("time") for e in wrapped.sandbox.telemetry_events if e.get("type") == "platform.initStart"
        }
        exported_inits = {r.get("time") for r in records if r.get("type") == "platform.initStart"}
        result.check(
            f"every init attempt's platform.initStart was exported "
            f"({len(platform_inits & exported_inits)} of {len(platform_inits)})",
            len(platform_inits) >= 3 and platform_inits <= exported_inits,
        )
    else:
        started = [
            r
            for r in records
            if r.get("type") == "platform.start"
            and isinstance(r.get("record"), dict)
            and r["record"].get("requestId") == fault_id
        ]
        result.check("the faulty invocation's platform.start was exported", bool(started))


def _check_threads_hit(result: Result, wrapped: Session) -> None:
    """The fault must have reached our threads before survival means anything: the
    listener and the watchdog are killed and must be restarted (the wrapper says so);
    the event loop, blocked on /event/next while the handler runs, gets SystemExit
    afterwards and must either catch it (and say so) or die and be restarted."""
    output = wrapped.sandbox.function_output
    hit_line = next((line for line in output if line.startswith("threads hit: ")), "")
    fields = dict(part.split(": ", 1) for part in hit_line.split("; ") if ": " in part)
    hit = set(filter(None, fields.get("threads hit", "").split(",")))
    dead = set(filter(None, fields.get("dead", "").split(",")))
    events = [d.get("event") for d in diagnostics(output)]
    loop_failed = [
        d for d in diagnostics(output) if d.get("event") == "extension_next_failed" and "SystemExit" in str(d)
    ]
    result.notes.append(hit_line or "the function printed no 'threads hit' line")
    both = {LOOP_THREAD, LISTENER_THREAD}
    result.check(f"the function hit both extension threads ({sorted(hit)})", both <= hit)
    result.check(
        "the listener thread was killed and the wrapper restarted it (listener_restarted)",
        LISTENER_THREAD in dead and "listener_restarted" in events,
    )
    result.check(
        "the watchdog thread was killed and the wrapper restarted it (watchdog_restarted)",
        WATCHDOG_THREAD in dead and "watchdog_restarted" in events,
    )
    loop_restarted = LOOP_THREAD in dead and "extension_restarted" in events
    result.check(
        "the event loop got SystemExit: caught it (extension_next_failed) or died and was restarted",
        bool(loop_failed) or loop_restarted,
    )


def _status_of(events: list[dict[str, Any]], request_id: str) -> str | None:
    """The status runtimeDone (else report) gives ``request_id``, with its errorType."""
    for kind in ("platform.runtimeDone", "platform.report"):
        for event in events:
            record = event.get("record")
            if (
                event.get("type") == kind
                and isinstance(record, dict)
                and record.get("requestId") == request_id
            ):
                error = record.get("errorType")
                return f"{record.get('status')}" + (f"/{error}" if error else "")
    return None


def _oom_support(result: Result, bare: Session) -> None:
    view = caller_view(bare.results[0])
    if view[2] != OOM_ERROR:
        result.unsupported = (
            f"without the wrapper the function allocating 384 MB at 128 MB got {describe_view(view)} "
            f"(maxMemoryUsedMB {bare.sandbox.invocations[0].maxMemoryUsedMB}): the sandbox does not enforce "
            f"the memory size yet, so {OOM_ERROR} cannot be compared"
        )
