"""Function faults: each runs without the wrapper and with it, and the two must agree.

Per fault: the faulty invocation, then two ordinary ones. Compared: what the caller
saw (status code, platform status, errorType, errorMessage with ids masked) and
which invocations were cold starts (the environment re-initialises after a crash
exactly when it would without us). With the wrapper (``file`` exporter) the
exported telemetry must give the faulty invocation the platform's status, and the
lines the function printed before it died must be exported after the re-init.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..context import Context
from ..harness import Session, caller_view, describe_view, exported_file_records, markers, session
from ..model import Result, median

OOM_ERROR = "Runtime.OutOfMemory"


@dataclass(frozen=True)
class Fault:
    title: str
    name: str
    event: dict[str, Any] = field(default_factory=dict)
    handler: str = "app.handler"
    timeout_s: float = 3.0
    env: dict[str, str] = field(default_factory=dict)
    init_timeout_s: float = 10.0


def faults(ctx: Context) -> list[Fault]:
    sleep = ctx.form.init_sleep_s
    return [
        Fault("function: raises an exception", "exception", {"fault": "exception"}),
        Fault("function: sys.exit(3)", "sys_exit", {"fault": "sys_exit"}),
        Fault("function: os._exit(7)", "os_exit", {"fault": "os_exit"}),
        Fault("function: segfault (ctypes)", "segfault", {"fault": "segfault"}),
        Fault("function: RecursionError", "recursion", {"fault": "recursion"}),
        Fault("function: timeout (3 s, the default)", "timeout", {"fault": "timeout"}),
        Fault("function: out of memory at 128 MB", "oom", {"fault": "oom"}),
        Fault("function: unserializable return", "unserializable", {"fault": "unserializable"}),
        Fault("function: init error (twice, then fixed)", "init_error", handler="init_error.handler"),
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
            "function: the extension's threads die (adaptive flush)",
            "kill_thread",
            {"fault": "kill_extension_thread"},
            env={"LAMBDA_WRAPPER_FLUSH": "adaptive"},
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
    result = Result(fault.title, "function")
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
    fault_id = wrapped.results[0].request_id
    platform = _status_of(wrapped.sandbox.telemetry_events, fault_id)
    exported = _status_of(records, fault_id)
    result.delivered = f"exported status: {exported or 'none'} (platform: {platform})"
    result.check(
        "exported telemetry gives the faulty invocation the platform's status (or nothing)",
        exported is None or exported == platform,
    )
    if fault.name == "init_error":
        before = {"init-0", "init-1"}
    elif fault.name == "init_slow":
        before = {
            m for m in markers("\n".join(wrapped.sandbox.function_output)) if m.startswith("slow-init-")
        }
    else:
        before = {f"{fault.name}.fault"}
    # The init faults' handler prints nothing; app.handler marks every invocation.
    wanted = before | ({f"{fault.name}.next"} if fault.handler == "app.handler" else set())
    missing = wanted - exported_marks
    result.lost = f"{len(missing)} of {len(wanted)} lines" + (f": {sorted(missing)}" if missing else "")
    result.check("lines printed before the fault were exported after it", not missing)


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
