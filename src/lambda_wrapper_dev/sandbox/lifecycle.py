"""The execution environment's lifecycle: Init, Invoke, freeze/thaw, reset (contract 2.6, 4).

Init (RAPID ``doRuntimeDomainInit``): ``platform.initStart``; launch the external
extensions and wait for their registration; start the runtime through the image
bootstrap; the runtime's first ``/next`` closes registration; wait until every
extension called ``/extension/event/next``; close subscriptions; then
``initRuntimeDone``, one ``platform.extension`` per extension, ``initReport``.

Init is lazy (first invoke), like on-demand Lambda and the RIE. The first Init
runs in phase ``init`` under ``init_timeout_s``. If it fails or times out, the
environment is reset and Init is retried inside the invoke, in phase ``invoke``
under the function timeout (Lambda's "suppressed init"); every later re-Init
(after a reset) is a phase-``invoke`` Init too, as the RIE does.

Invoke (RAPID ``doInvoke``): ``platform.start``; INVOKE to subscribed extensions
and the event to the runtime; ``platform.runtimeDone`` on its answer; wait until
the runtime and every INVOKE extension called ``next`` again; ``platform.report``.
The function timeout covers the whole phase. A timeout or a crash resets the
environment; the next invoke re-initialises. Between invokes the environment is
frozen after the telemetry that is due has been delivered: by the cgroup
freezer, or without cgroups by SIGSTOP to every process group.

Resources (``cgroups``, root only): the memory size limits the environment's
memory, an OOM kill of the runtime is ``Runtime.OutOfMemory``, and the CPU is
the memory size's share of a vCPU, except during Init, which runs unthrottled:
on Lambda Init is not held to the memory size's CPU share (observed, not
documented: a Python cold start at 128 MB takes ~150 ms, not the second that
7 % of a vCPU would give, and "init code runs faster than handler code"). A
re-Init inside an invoke (after a reset) gets the same boost here; whether
Lambda boosts that one too is not known.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from . import records
from .cgroups import EnvironmentCgroups
from .emitter import Emitter
from .freeze_clock import FreezeClock
from .namespace import HostLayout, NamespaceLayout
from .process import ManagedProcess, describe_exit, peak_memory_kib
from .runtime_api import FUNCTION_ARN_PREFIX
from .shutdown import shut_down
from .state import Agent, AgentEvent, AgentStates, EnvironmentState, Invocation, RuntimeStates
from .subscriber_views import view_for
from .subscription_rules import SubscriptionRequest
from .telemetry_bus import TelemetryBus

log = structlog.get_logger("lambda_wrapper_dev.sandbox")

TIMED_OUT = "timeout"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
DUE_TELEMETRY_WAIT_S = 1.0
# Longest wait, before SIGTERM, for listeners that keep answering (see flush_all).
SHUTDOWN_FLUSH_WAIT_S = 2.0


def runtime_version_arn(runtime_version: str, region: str) -> str:
    """The ARN Lambda gives a runtime version: ``arn:aws:lambda:REGION::runtime:`` and a hash.

    Lambda names each runtime build by a 64-hex-digit id; a digest of the version
    string stands for it, stable for a given runtime image.
    """
    digest = hashlib.sha256(runtime_version.encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


@dataclass
class EnvironmentConfig:
    function_name: str
    handler: str
    memory_mb: int
    timeout_s: float
    init_timeout_s: float
    runtime_argv: list[str]
    runtime_env: dict[str, str]
    extension_env: dict[str, str]
    extensions: list[tuple[str, str, bool]]  # name, path as the process sees it, executable?
    layout: HostLayout | NamespaceLayout
    runtime_version: str
    instance_id: str
    cgroups: EnvironmentCgroups | None = None  # None: no resource limits (not root)


@dataclass
class InitOutcome:
    phase: str
    status: str
    error_type: str | None
    duration_s: float
    error_body: bytes


@dataclass
class InvokeOutcome:
    request_id: str
    status: str
    error_type: str | None
    status_code: int
    body: bytes
    report: dict
    cold_init: InitOutcome | None
    invoke_init: InitOutcome | None


class Lifecycle:
    def __init__(
        self,
        config: EnvironmentConfig,
        emitter: Emitter,
        clock: FreezeClock,
        bus: TelemetryBus,
        on_agent_registered: Callable[[Agent], None],
        on_subscribed: Callable[[Agent, SubscriptionRequest], None],
    ) -> None:
        self.config = config
        self._emitter = emitter
        self._clock = clock
        self._bus = bus
        self._on_agent_registered = on_agent_registered
        self._on_subscribed = on_subscribed
        self._env = EnvironmentState(config.function_name, config.handler, [])
        self._env.closed = True
        self._runtime: ManagedProcess | None = None
        self._extensions: dict[str, ManagedProcess] = {}
        self._initialized = False
        self._inits = 0
        self._frozen = False
        self._frozen_by_signals = False
        self._oom_kills_seen = 0  # the cgroup's OOM kill count before what runs now

    # -- hooks used by the APIs ------------------------------------------------------------

    def current_env(self) -> EnvironmentState:
        return self._env

    def runtime_first_next(self) -> None:
        env = self._env
        with env.cond:
            env.registration_open = False
            env.cond.notify_all()

    def runtime_answering(self) -> None:
        """The runtime posted its answer: publish its log lines before ``runtimeDone``."""
        runtime = self._runtime
        if runtime is not None:
            runtime.output.drain()

    def agent_registered(self, agent: Agent) -> None:
        log.debug("extension registered", name=agent.name, external=agent.external, events=agent.events)
        self._on_agent_registered(agent)

    def subscribe(self, agent: Agent, request: SubscriptionRequest) -> None:
        self._bus.subscribe(agent.name, request, view_for(request))
        types = list(request.types)
        self._emitter.emit(
            records.telemetry_subscription(agent.name, types)
            if request.api == "telemetry"
            else records.logs_subscription(agent.name, types)
        )
        self._on_subscribed(agent, request)

    # -- public operations ---------------------------------------------------------------

    @property
    def process_groups(self) -> list[int]:
        processes = [self._runtime, *self._extensions.values()]
        return [process.pid for process in processes if process is not None]

    def invoke(self, payload: bytes, trace_id: str | None, client_context: str | None) -> InvokeOutcome:
        request_id = str(uuid.uuid4())
        cold_init: InitOutcome | None = None
        if not self._initialized and self._inits == 0:
            cold_init = self._init("init", time.monotonic() + self.config.init_timeout_s)
            if cold_init.status != "success":
                self._reset("timeout" if cold_init.status == TIMED_OUT else "failure")
        started_wall, started = time.time(), time.monotonic()
        deadline = started + self.config.timeout_s
        deadline_ms = int((started_wall + self.config.timeout_s) * 1000)
        invoke_init: InitOutcome | None = None
        if not self._initialized:
            invoke_init = self._init("invoke", deadline)
            if invoke_init.status != "success":
                return self._failed_init(request_id, trace_id, started, cold_init, invoke_init)
        self._thaw()
        invocation = Invocation(
            request_id,
            payload,
            deadline_ms,
            trace_id,
            client_context,
            started_wall=started_wall,
            started=started,
        )
        return self._run_invocation(invocation, deadline, cold_init, invoke_init)

    def shutdown(self, reason: str) -> None:
        if self._runtime is not None or self._extensions:
            self._reset(reason)

    # -- Init -------------------------------------------------------------------------------

    def _init(self, phase: str, deadline: float) -> InitOutcome:
        self._inits += 1
        config = self.config
        env = EnvironmentState(
            config.function_name, config.handler, [name for name, _, _ in config.extensions]
        )
        self._env = env
        started = time.monotonic()
        cgroups = config.cgroups
        if cgroups is not None:
            cgroups.reset_peak()
            cgroups.set_cpu_unthrottled(True)  # Init's CPU boost (module docstring)
            self._oom_kills_seen = cgroups.oom_kills()
        self._emitter.emit(
            records.init_start(
                phase,
                config.function_name,
                "$LATEST",
                config.instance_id,
                config.memory_mb,
                config.runtime_version,
                runtime_version_arn(config.runtime_version, config.runtime_env.get("AWS_REGION", "")),
            )
        )
        failure = self._launch_extensions(env)
        if failure is None:
            failure = self._wait(
                env,
                deadline,
                lambda: all(agent.state != AgentStates.STARTED for agent in env.agents if agent.external),
            )
        if failure is None:
            failure = self._start_runtime(env)
        if failure is None:
            failure = self._wait(env, deadline, lambda: env.runtime_state == RuntimeStates.READY)
        if failure is None:
            failure = self._wait(
                env, deadline, lambda: all(agent.waiting_idle for agent in env.registered_agents())
            )
        with env.cond:
            env.subscriptions_open = False
            registered = env.registered_agents()
            init_error = env.init_error
        self._bus.close_subscriptions()
        if cgroups is not None:
            cgroups.set_cpu_unthrottled(False)
        status = "success" if failure is None else ("timeout" if failure == TIMED_OUT else "error")
        error_type = None if failure in (None, TIMED_OUT) else failure
        duration = time.monotonic() - started
        self._emitter.emit(records.init_runtime_done(phase, status, error_type))
        for agent in registered:
            self._emitter.emit(records.extension(agent.name, agent.state, agent.events, agent.error_type))
        self._emitter.emit(records.init_report(phase, status, duration, error_type))
        log.info(
            "init done",
            phase=phase,
            status=status,
            error_type=error_type,
            duration_ms=records.milliseconds(duration),
        )
        self._initialized = status == "success"
        return InitOutcome(phase, status, error_type, duration, init_error.body if init_error else b"")

    def _launch_extensions(self, env: EnvironmentState) -> str | None:
        layout = self.config.layout
        for name, path, executable in self.config.extensions:
            agent = env.external_agent(name)
            assert agent is not None
            if not executable:
                agent.state, agent.error_type = AgentStates.LAUNCH_ERROR, "Extension.LaunchError"
                return agent.error_type
            try:
                self._extensions[name] = ManagedProcess(
                    f"extension-{name}",
                    self._argv(layout.argv([path])),
                    self.config.extension_env,
                    layout.cwd,
                    self._emitter.extension_lines,
                    functools.partial(self._extension_exited, env, name),
                )
            except OSError as error:
                log.warning("extension launch failed", name=name, error=str(error))
                agent.state, agent.error_type = AgentStates.LAUNCH_ERROR, "Extension.LaunchError"
                return agent.error_type
        return None

    def _start_runtime(self, env: EnvironmentState) -> str | None:
        layout = self.config.layout
        try:
            self._runtime = ManagedProcess(
                "runtime",
                self._argv(layout.argv(self.config.runtime_argv)),
                self.config.runtime_env,
                layout.cwd,
                self._emitter.function_lines,
                functools.partial(self._runtime_exited, env),
            )
        except OSError as error:
            log.warning("runtime launch failed", error=str(error))
            return "Runtime.InvalidEntrypoint"
        with env.cond:
            env.runtime_started = True
        return None

    def _argv(self, argv: list[str]) -> list[str]:
        cgroups = self.config.cgroups
        return argv if cgroups is None else cgroups.wrap(argv)

    def _runtime_exited(self, env: EnvironmentState, process: ManagedProcess, code: int) -> None:
        process.output.finished.wait(1.0)  # its last lines come before the platform's verdict
        cgroups = self.config.cgroups
        # The kernel counts the OOM kill before the runtime's death is reported.
        out_of_memory = cgroups is not None and cgroups.oom_kills() > self._oom_kills_seen
        with env.cond:
            env.runtime_exit_code = code
            env.runtime_out_of_memory = out_of_memory
            env.cond.notify_all()

    def _extension_exited(self, env: EnvironmentState, name: str, process: ManagedProcess, code: int) -> None:
        with env.cond:
            agent = env.external_agent(name)
            if agent is not None:
                agent.exited = True
            env.cond.notify_all()

    def _wait(self, env: EnvironmentState, deadline: float, done: Callable[[], bool]) -> str | None:
        """Wait until ``done``; else the error type of what failed, or ``TIMED_OUT``."""
        with env.cond:
            while True:
                if done():
                    return None
                failure = _failure(env)
                if failure is not None:
                    return failure
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return TIMED_OUT
                env.cond.wait(remaining)

    # -- Invoke -----------------------------------------------------------------------------

    def _run_invocation(
        self,
        invocation: Invocation,
        deadline: float,
        cold_init: InitOutcome | None,
        invoke_init: InitOutcome | None,
    ) -> InvokeOutcome:
        env = self._env
        arn = FUNCTION_ARN_PREFIX + self.config.function_name
        if self.config.cgroups is not None:
            self._oom_kills_seen = self.config.cgroups.oom_kills()
        self._emitter.emit(records.start(invocation.request_id, arn, invocation.trace_id))
        with env.cond:
            subscribed = [agent for agent in env.registered_agents() if "INVOKE" in agent.events]
            event_body = _invoke_event(invocation, arn)
            for agent in subscribed:
                env.deliver(agent, AgentEvent(event_body))
            env.invocation = invocation
            env.cond.notify_all()
        failure = self._wait(env, deadline, lambda: invocation.outcome is not None)
        if failure is None:
            status = "success" if invocation.outcome == "response" else "error"
            error_type = invocation.error_type
            self._emit_runtime_done(invocation, status, error_type)
            after = self._wait(
                env,
                deadline,
                lambda: (
                    env.runtime_state == RuntimeStates.READY
                    and all(agent.waiting_idle for agent in subscribed)
                ),
            )
            if after is not None:
                status, error_type = (TIMED_OUT, None) if after == TIMED_OUT else ("error", after)
            failure = after
        else:
            status, error_type = (TIMED_OUT, None) if failure == TIMED_OUT else ("error", failure)
            self._emit_runtime_done(invocation, status, error_type)
        finished = time.monotonic()
        duration = self.config.timeout_s if status == TIMED_OUT else finished - invocation.started
        spans = []
        timing = invocation.timing
        if subscribed and timing is not None:
            overhead = max(0.0, finished - timing.read)
            spans.append(records.span("extensionOverhead", timing.read_wall, overhead))
        report = self._emit_report(invocation, status, error_type, duration, cold_init, spans)
        status_code, body = self._caller_answer(invocation, status, error_type, failure)
        if failure is not None:
            self._reset(TIMED_OUT if failure == TIMED_OUT else "failure")
        else:
            self._freeze()
        return InvokeOutcome(
            invocation.request_id, status, error_type, status_code, body, report, cold_init, invoke_init
        )

    def _emit_runtime_done(self, invocation: Invocation, status: str, error_type: str | None) -> None:
        spans = []
        duration: float | None = None
        produced: int | None = None
        timing = invocation.timing
        if timing is not None:
            spans = [
                records.span("responseLatency", invocation.started_wall, timing.arrived - invocation.started),
                records.span("responseDuration", timing.arrived_wall, timing.read - timing.arrived),
            ]
            duration = timing.read - invocation.started
            produced = len(invocation.body)
        elif status == TIMED_OUT:
            duration = self.config.timeout_s
        self._emitter.emit(
            records.runtime_done(
                invocation.request_id, status, error_type, duration, produced, spans, invocation.trace_id
            )
        )

    def _emit_report(
        self,
        invocation: Invocation,
        status: str,
        error_type: str | None,
        duration: float,
        cold_init: InitOutcome | None,
        spans: list[dict],
    ) -> dict:
        duration_ms = records.milliseconds(duration)
        init_ms = records.milliseconds(cold_init.duration_s) if cold_init is not None else None
        metrics: dict = {
            "durationMs": duration_ms,
            # Since August 2025 Lambda bills the Init phase of on-demand functions too.
            "billedDurationMs": math.ceil(duration_ms + (init_ms or 0.0)),
            "memorySizeMB": self.config.memory_mb,
            "maxMemoryUsedMB": self._max_memory_used_mb(),
        }
        if init_ms is not None:
            metrics["initDurationMs"] = init_ms
        event = records.report(invocation.request_id, status, error_type, metrics, spans, invocation.trace_id)
        self._emitter.emit(event)
        return event["record"]

    def _max_memory_used_mb(self) -> int:
        """The environment's peak: the memory cgroup's, else the processes' peak RSS."""
        cgroups = self.config.cgroups
        if cgroups is not None:
            return math.ceil(cgroups.peak_bytes() / (1024 * 1024))
        return math.ceil(peak_memory_kib(self.process_groups) / 1024)

    def _caller_answer(
        self, invocation: Invocation, status: str, error_type: str | None, failure: str | None
    ) -> tuple[int, bytes]:
        """What the RIE's invoke endpoint answers (observed on the RIE, see README)."""
        if status == TIMED_OUT:
            if invocation.outcome is not None:
                return 200, invocation.body
            return 200, f"Task timed out after {self.config.timeout_s:.2f} seconds".encode()
        if failure is not None and invocation.outcome is None:
            with self._env.cond:
                code = self._env.runtime_exit_code
            reason = (
                f"Runtime exited with error: {describe_exit(code)}"
                if code is not None and error_type in ("Runtime.ExitError", OUT_OF_MEMORY)
                else f"{error_type}"
            )
            message = f"RequestId: {invocation.request_id} Error: {reason}"
            return 502, json.dumps(
                {"errorType": error_type, "errorMessage": message}, separators=(",", ":")
            ).encode()
        return 200, invocation.body

    def _failed_init(
        self,
        request_id: str,
        trace_id: str | None,
        started: float,
        cold_init: InitOutcome | None,
        invoke_init: InitOutcome,
    ) -> InvokeOutcome:
        arn = FUNCTION_ARN_PREFIX + self.config.function_name
        self._emitter.emit(records.start(request_id, arn, trace_id))
        invocation = Invocation(request_id, b"", 0, trace_id, None, started=started)
        timed_out = invoke_init.status == TIMED_OUT
        duration = self.config.timeout_s if timed_out else time.monotonic() - started
        report = self._emit_report(
            invocation, invoke_init.status, invoke_init.error_type, duration, cold_init, []
        )
        self._reset(TIMED_OUT if timed_out else "failure")
        if timed_out:
            status_code, body = 200, f"Task timed out after {self.config.timeout_s:.2f} seconds".encode()
        else:
            status_code, body = 502, invoke_init.error_body
        return InvokeOutcome(
            request_id,
            invoke_init.status,
            invoke_init.error_type,
            status_code,
            body,
            report,
            cold_init,
            invoke_init,
        )

    # -- freeze, thaw, reset ---------------------------------------------------------------

    def _freeze(self) -> None:
        self._bus.deliver_due(DUE_TELEMETRY_WAIT_S)
        self._clock.freeze()
        cgroups = self.config.cgroups
        self._frozen_by_signals = cgroups is None or not cgroups.freeze()
        if self._frozen_by_signals:
            for process in self._processes():
                process.freeze()
        self._frozen = True

    def _thaw(self) -> None:
        if not self._frozen:
            return
        if self.config.cgroups is not None:
            self.config.cgroups.thaw()
        if self._frozen_by_signals:
            for process in self._processes():
                process.thaw()
        self._clock.thaw()
        self._bus.thawed()
        self._frozen = False

    def _processes(self) -> list[ManagedProcess]:
        return [process for process in (self._runtime, *self._extensions.values()) if process is not None]

    def _reset(self, reason: str) -> None:
        log.info("environment shutdown", reason=reason)
        self._thaw()
        # Everything the processes wrote before the shutdown reaches the subscribers
        # before SIGTERM: read what is still in the pipes, then deliver every
        # buffered batch (extensions that drain after SIGTERM lose nothing either).
        for process in self._processes():
            process.output.drain()
        self._bus.flush_all(SHUTDOWN_FLUSH_WAIT_S)
        shut_down(self._env, self._runtime, self._extensions, reason)
        self._env.close()
        self._bus.reset()
        for process in self._processes():
            with contextlib.suppress(Exception):
                process.wait_exit(1.0)
        self._runtime = None
        self._extensions = {}
        self._initialized = False


def _failure(env: EnvironmentState) -> str | None:
    """The error type that ends the current wait, or None to keep waiting.

    An accepted ``/runtime/init/error`` does not end Init: RAPID only moves the
    runtime to ``InitError`` and Init ends when the runtime exits (a runtime may
    flush logs or telemetry first; observed on the RIE), or at the deadline
    (then a timeout). The posted error is the one reported, like RAPID's "first
    fatal error" rule.
    """
    failure = _process_failure(env)
    if failure is not None and env.init_error is not None:
        return env.init_error.error_type
    return failure


def _process_failure(env: EnvironmentState) -> str | None:
    if env.runtime_started and env.runtime_exit_code is not None:
        return OUT_OF_MEMORY if env.runtime_out_of_memory else "Runtime.ExitError"
    agent = env.agent_failure()
    if agent is None:
        return None
    if agent.state == AgentStates.INIT_ERROR:
        return "Extension.InitError"
    if agent.state == AgentStates.EXIT_ERROR:
        return "Extension.ExitError"
    if agent.state == AgentStates.LAUNCH_ERROR:
        return "Extension.LaunchError"
    return "Extension.Crash"


def _invoke_event(invocation: Invocation, arn: str) -> bytes:
    """RAPID's INVOKE event, key order and all; ``json.Marshal`` adds no newline."""
    event: dict = {
        "eventType": "INVOKE",
        "deadlineMs": invocation.deadline_ms,
        "requestId": invocation.request_id,
        "invokedFunctionArn": arn,
    }
    if invocation.trace_id:
        event["tracing"] = {"type": "X-Amzn-Trace-Id", "value": invocation.trace_id}
    return json.dumps(event, separators=(",", ":")).encode()
