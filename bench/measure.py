"""One trial = one fresh execution environment, measured from the caller's side and the platform's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .platforms import EnvironmentSpec, FunctionEnvironment, Observations, start_environment
from .stats import median, percentile

WARM_PAYLOAD = json.dumps({"path": "/orders/42", "method": "GET"}).encode()
IMPORT_LINE_PREFIX = "import time:"
DIAGNOSTIC_MARKER = '{"logger": "lambda_wrapper"'


@dataclass
class ColdWarmTrial:
    """Cold start, then ``warm`` invocations, in one environment."""

    platform: str
    variant: str
    round: int
    ok: bool = True
    error: str = ""
    init_ms: float | None = None  # runtime process start to its first /next (the platform's Init span)
    first_invoke_ms: float | None = None  # the caller's first invoke, including the lazy Init
    init_cpu_ms: float | None = None  # CPU the runtime process used up to the end of the first invoke
    warm_p50_ms: float | None = None
    warm_p99_ms: float | None = None
    warm_runtime_p50_ms: float | None = None  # the platform's runtime duration (handler + runtime)
    extension_overhead_ms: float | None = None  # median post-runtime wait for extensions
    rss_mb: float | None = None  # VmHWM of the runtime process after the warm invocations
    platform_max_memory_mb: float | None = None
    sink_requests: dict[str, int] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)  # lambda_wrapper warnings/errors, deduplicated

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ThroughputStep:
    """``lines`` log lines per invocation, ``invocations`` times, in one fresh environment.

    Every invocation counts for drops; all but the first are timed.
    """

    platform: str
    variant: str
    round: int
    lines: int
    ok: bool = True
    error: str = ""
    dropped_records: int = 0
    dropped_events: int = 0
    runtime_ms: list[float] = field(default_factory=list)  # per invocation, the platform's runtime duration
    caller_ms: list[float] = field(default_factory=list)
    # CPU of the function's process per invocation: the handler's writes plus whatever our
    # threads do with the logs, without the platform's own (in-process, Python) reading speed.
    cpu_ms_per_invocation: float | None = None

    @property
    def runtime_median_ms(self) -> float | None:
        return median(self.runtime_ms)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "runtime_median_ms": self.runtime_median_ms}


def cold_warm_trial(
    platform: str, variant: str, round_number: int, spec: EnvironmentSpec, warm_invocations: int
) -> ColdWarmTrial:
    trial = ColdWarmTrial(platform, variant, round_number)
    environment = start_environment(platform, spec)
    latencies: list[float] = []
    observations: Observations | None = None
    try:
        first = environment.invoke(WARM_PAYLOAD)
        trial.first_invoke_ms = first.latency_ms
        trial.init_cpu_ms = environment.runtime_cpu_ms()
        if not first.ok:
            trial.ok, trial.error = False, f"first invoke failed: {first.detail}"
        else:
            for _ in range(warm_invocations):
                view = environment.invoke(WARM_PAYLOAD)
                if not view.ok:
                    trial.ok, trial.error = False, f"warm invoke failed: {view.detail}"
                    break
                latencies.append(view.latency_ms)
            trial.rss_mb = environment.runtime_peak_rss_mb()
    finally:
        observations = environment.stop()
    trial.init_ms = observations.init_ms
    trial.warm_p50_ms = percentile(latencies, 50)
    trial.warm_p99_ms = percentile(latencies, 99)
    warm = observations.invocations[1:]
    trial.warm_runtime_p50_ms = median([i.runtime_ms for i in warm if i.runtime_ms is not None])
    trial.extension_overhead_ms = median(
        [i.extension_overhead_ms for i in warm if i.extension_overhead_ms is not None]
    )
    memory = [i.max_memory_mb for i in observations.invocations if i.max_memory_mb is not None]
    trial.platform_max_memory_mb = max(memory) if memory else None
    trial.diagnostics = wrapper_diagnostics(observations.output_lines)
    if not trial.ok:
        trial.error += "\n" + output_tail(observations)
    return trial


def throughput_step(
    platform: str, variant: str, round_number: int, spec: EnvironmentSpec, lines: int, invocations: int
) -> ThroughputStep:
    step = ThroughputStep(platform, variant, round_number, lines)
    environment: FunctionEnvironment = start_environment(platform, spec)
    payload = json.dumps({"lines": lines}).encode()
    try:
        # The cold invocation logs nothing, so Init does not mix with the log flood.
        cold = environment.invoke(WARM_PAYLOAD)
        if not cold.ok:
            step.ok, step.error = False, f"first invoke failed: {cold.detail}"
        else:
            # The first flood grows buffers and warms caches: run it, but time only the rest.
            timed_from = 1 if invocations > 1 else 0
            cpu_before: float | None = None
            for index in range(invocations):
                if index == timed_from:
                    cpu_before = environment.runtime_cpu_ms()
                view = environment.invoke(payload)
                if not view.ok:
                    step.ok, step.error = False, f"invoke with {lines} lines failed: {view.detail}"
                    break
                if index >= timed_from:
                    step.caller_ms.append(view.latency_ms)
            cpu_after = environment.runtime_cpu_ms()
            if cpu_before is not None and cpu_after is not None and step.caller_ms:
                step.cpu_ms_per_invocation = (cpu_after - cpu_before) / len(step.caller_ms)
    finally:
        # Stopping drains the telemetry buffers, so every drop of this step is counted here.
        observations = environment.stop()
    step.dropped_records = observations.logs_dropped_records
    step.dropped_events = observations.logs_dropped_events
    timed = observations.invocations[-len(step.caller_ms) :] if step.caller_ms else []
    step.runtime_ms = [i.runtime_ms for i in timed if i.runtime_ms is not None]
    if not step.ok:
        step.error += "\n" + output_tail(observations)
    return step


def import_profile(platform: str, spec: EnvironmentSpec) -> list[str]:
    """``-X importtime`` lines of one real cold start (bootstrap, runtime, wrapper, handler)."""
    profiled = EnvironmentSpec(
        spec.task_root, spec.handler, spec.layer_dir, {**spec.env, "PYTHONPROFILEIMPORTTIME": "1"}
    )
    environment = start_environment(platform, profiled)
    try:
        environment.invoke(WARM_PAYLOAD)
    finally:
        observations = environment.stop()
    return [line for line in observations.output_lines if IMPORT_LINE_PREFIX in line]


def wrapper_diagnostics(lines: Sequence[str], limit: int = 10) -> list[str]:
    """Our own warning and error lines (``"logger": "lambda_wrapper"``), each once.

    A variant whose feature was switched off (an invalid setting, an exporter that
    failed to start) must not pass as "every feature on" silently.
    """
    found: dict[str, str] = {}
    for line in lines:
        start = line.find(DIAGNOSTIC_MARKER)
        if start < 0:
            continue
        try:
            record = json.loads(line[start:].strip())
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("level") not in ("warning", "error", "critical"):
            continue
        event, message = str(record.get("event")), str(record.get("message", ""))
        found.setdefault(f"{event}\0{message}", f"{record.get('level')} {event}: {message}")
    return list(found.values())[:limit]


def output_tail(observations: Observations, lines: int = 15) -> str:
    return "\n".join(line.rstrip() for line in observations.output_lines[-lines:])


def first_drop(steps: Sequence[ThroughputStep]) -> int | None:
    """Fewest lines per invocation at which any step saw ``platform.logsDropped``."""
    dropped = [step.lines for step in steps if step.dropped_events > 0]
    return min(dropped) if dropped else None
