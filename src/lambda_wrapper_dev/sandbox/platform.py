"""``Sandbox``: a local, Lambda-faithful platform for one function.

It serves the Runtime, Extensions, Telemetry and Logs APIs on one loopback port,
launches the runtime through the runtime image's bootstrap (which honours
``AWS_LAMBDA_EXEC_WRAPPER`` like the managed runtime) and any external extensions,
and drives Init, Invoke, freeze/thaw and Shutdown like Lambda (see ``lifecycle``).
It is held to the official Runtime Interface Emulator: where the RIE implements
something, the sandbox answers the same way.

File system, two modes:

- **Namespace mode** (root, ``unshare`` available): the function sees ``/var/task``
  and ``/opt`` read-only and ``/tmp`` as its own tmp dir, in a private mount
  namespace, exactly like Lambda. Writing to the task root fails with EROFS.
- **Host mode** (no root, or ``use_namespace=False``): processes run with the real
  paths (``LAMBDA_TASK_ROOT`` is the task root's real path, the layer is found via
  ``_LAMBDA_SANDBOX_OPT_DIR``, ``TMPDIR`` is the function's tmp dir). Nothing is
  read-only, so the task root and the layer are snapshotted (paths, sizes, mtimes)
  and compared after every invoke; a write is reported in ``InvokeResult.warnings``
  and ``Sandbox.warnings``, because it would fail with EROFS on Lambda.

Resources (``cgroups``): as root, the environment gets its own memory, cpu and
freezer cgroups (cgroup v1, nested below this process's own). ``memory_mb`` is
the memory limit, and an OOM kill of the runtime is reported as Lambda does
(``Runtime.OutOfMemory`` in ``platform.runtimeDone``/``platform.report``, status
``error``, the caller gets ``Runtime exited with error: signal: killed``, the next
invoke re-initialises); ``maxMemoryUsedMB`` is the cgroup's peak. The CPU quota
is the memory size's share of a vCPU (1,769 MB = one vCPU), except during Init,
which runs unthrottled as on Lambda; and freezing uses the kernel freezer, which
also stops children that left the runtime's process group. Without root (or with
``use_cgroups=False``) none of this applies: memory is not limited, the CPU is not
shared out, freezing is SIGSTOP per process group, and the sandbox says so once
(``Sandbox.resource_limits`` describes the mode either way). The environment
variable ``LAMBDA_SANDBOX_CGROUPS=0`` (or ``1``) decides for a whole run.

Telemetry at shutdown: before SIGTERM the sandbox reads what the processes
already wrote to their pipes and delivers every buffered batch, for as long as
the listeners keep answering (at most 2 s); nothing is dropped for being slow
then. A subscriber whose POST fails (its listener died with the runtime) is not
retried.

Init errors: an accepted ``/runtime/init/error`` does not end Init; Init ends
when the runtime exits (or at the deadline), as on the RIE, so a runtime may
still flush before it goes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from . import cgroups as cgroup_limits
from .cgroups import EnvironmentCgroups
from .emitter import Emitter
from .environment_variables import extension_environment, log_stream_name, runtime_environment
from .extensions_api import ExtensionsApi
from .freeze_clock import FreezeClock
from .lifecycle import EnvironmentConfig, InvokeOutcome, Lifecycle
from .mounts import Bind, Tmpfs, composed_opt, lambda_binds, namespaces_available
from .namespace import HostLayout, NamespaceLayout
from .results import InvocationSummary, InvokeResult, decoded_response
from .runtime_api import RuntimeApi, RuntimeEvents
from .runtime_image import ensure_runtime_image
from .server import PlatformServer, Router
from .state import Agent
from .subscription_rules import SubscriptionRequest
from .task_root_guard import TaskRootGuard
from .telemetry_api import TelemetryApi
from .telemetry_bus import TelemetryBus

__all__ = ["FunctionSpec", "InvocationSummary", "InvokeResult", "Sandbox"]

log = structlog.get_logger("lambda_wrapper_dev.sandbox")


@dataclass
class FunctionSpec:
    task_root: Path
    handler: str = "app.handler"
    layer_dir: Path | None = None
    use_wrapper: bool = True  # AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-wrapper; needs layer_dir
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 128
    timeout_s: float = 3.0
    tmp_dir: Path | None = None
    python_version: str | None = None
    function_name: str = "function"
    init_timeout_s: float = 10.0
    telemetry_api: bool = True  # False: subscriptions answered 202 Telemetry.NotSupported, like the RIE
    bootstrap_argv: list[str] | None = None  # instead of /var/runtime/bootstrap, paths as seen inside
    extensions_dir: Path | None = (
        None  # external extensions; defaults to <layer>/extensions (/opt/extensions)
    )


class Sandbox:
    """One function's execution environment. Use as a context manager."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        use_namespace: bool | None = None,
        keep_tmp: bool = False,
        use_cgroups: bool | None = None,
    ) -> None:
        """``use_namespace`` forces a file-system mode (default: namespace mode when root);
        ``keep_tmp`` keeps the default function ``/tmp`` after shutdown (``spec.tmp_dir``
        is always kept, it belongs to the caller); ``use_cgroups`` forces the resource
        limits on (error if impossible) or off (default: on when root and available)."""
        self.spec = spec
        self._keep_tmp = keep_tmp
        self.namespace_mode = namespaces_available() if use_namespace is None else use_namespace
        self._use_cgroups = use_cgroups
        self.cgroups: EnvironmentCgroups | None = None
        self.runtime_api = ""
        self.invocations: list[InvocationSummary] = []
        self.warnings: list[str] = []
        self.registered_extensions: list[dict[str, Any]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.tmp_dir: Path = Path()
        self._emitter = Emitter(json_logs=spec.env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON")
        self._clock = FreezeClock()
        self._bus: TelemetryBus | None = None
        self._server: PlatformServer | None = None
        self._layout: HostLayout | NamespaceLayout | None = None
        self._lifecycle: Lifecycle | None = None
        self._guard: TaskRootGuard | None = None
        self._state_dir: Path | None = None
        self._invoke_lock = threading.Lock()
        self._closed = False

    # -- what the platform observed -------------------------------------------------------

    @property
    def resource_limits(self) -> str:
        """How memory, CPU and freezing are enforced, for people reading a run."""
        if self.cgroups is not None:
            return self.cgroups.describe()
        return "none: memory not limited, CPU not shared out by memory size, freezing by SIGSTOP"

    @property
    def process_groups(self) -> list[int]:
        """The process groups of this environment's runtime and external extensions (each
        leads its own), empty before it starts."""
        return [] if self._lifecycle is None else self._lifecycle.process_groups

    @property
    def telemetry_events(self) -> list[dict]:
        return self._emitter.events

    @property
    def function_output(self) -> list[str]:
        return self._emitter.function_output

    @property
    def extension_output(self) -> list[str]:
        return self._emitter.extension_output

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Start the server (and the namespace); Init waits for the first invoke."""
        try:
            self._start()
        except BaseException:
            self.shutdown()
            raise

    def _start(self) -> None:
        spec = self.spec
        task_root = Path(spec.task_root).resolve()
        if not task_root.is_dir():
            raise ValueError(f"task root {task_root} is not a directory")
        layer_dir = Path(spec.layer_dir).resolve() if spec.layer_dir else None
        if spec.use_wrapper and layer_dir is None:
            raise ValueError("use_wrapper needs a layer_dir (the wrapper is <layer>/lambda-wrapper)")
        image = ensure_runtime_image(spec.python_version)
        self.cgroups = cgroup_limits.for_environment(spec.memory_mb, self._use_cgroups)
        self._state_dir = Path(tempfile.mkdtemp(prefix="lambda-sandbox-"))
        self.tmp_dir = Path(spec.tmp_dir).resolve() if spec.tmp_dir else self._state_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        empty_opt = self._state_dir / "opt"
        empty_opt.mkdir()
        extensions_source = self._extensions_source(layer_dir, empty_opt)

        router = Router()
        self._bus = TelemetryBus(self._clock, self._emitter.logs_dropped)
        self._emitter.attach(self._bus)
        self._server = PlatformServer(router)
        self.runtime_api = self._server.address

        if self.namespace_mode:
            binds: list[Bind | Tmpfs] = list(
                lambda_binds(task_root, layer_dir, image.runtime_dir, self.tmp_dir, empty_opt)
            )
            if spec.extensions_dir is not None and extensions_source is not None:
                binds = [item for item in binds if item.target != "/opt"]
                binds += composed_opt(layer_dir, extensions_source)
            self._layout = NamespaceLayout(binds, self._state_dir)
            bootstrap = ["/var/runtime/bootstrap"]
        else:
            self._layout = HostLayout(task_root, layer_dir or empty_opt, image.runtime_dir, self.tmp_dir)
            bootstrap = [str(image.runtime_dir / "bootstrap-local")]
            roots = {"/var/task": task_root, **({"/opt": layer_dir} if layer_dir else {})}
            self._guard = TaskRootGuard(roots)
        paths = self._layout.paths

        instance_id = log_stream_name()
        wrapper = f"{paths.opt_dir}/lambda-wrapper" if spec.use_wrapper else None
        runtime_env = runtime_environment(
            function_name=spec.function_name,
            memory_mb=spec.memory_mb,
            handler=spec.handler,
            runtime_api=self.runtime_api,
            paths=paths,
            interpreter_bin=str(image.lang_dir / "bin"),
            log_stream=instance_id,
            wrapper=wrapper,
            extra=spec.env,
            host_mode=not self.namespace_mode,
        )
        extensions_seen = f"{paths.opt_dir}/extensions" if self.namespace_mode else str(extensions_source)
        config = EnvironmentConfig(
            function_name=spec.function_name,
            handler=spec.handler,
            memory_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
            init_timeout_s=spec.init_timeout_s,
            runtime_argv=list(spec.bootstrap_argv or bootstrap),
            runtime_env=runtime_env,
            extension_env=extension_environment(runtime_env),
            extensions=_discover_extensions(extensions_source, extensions_seen),
            layout=self._layout,
            runtime_version=f"python:{image.python_version}.sandbox",
            instance_id=instance_id,
            cgroups=self.cgroups,
        )
        self._lifecycle = Lifecycle(
            config, self._emitter, self._clock, self._bus, self._agent_registered, self._subscribed
        )
        lifecycle = self._lifecycle
        RuntimeApi(
            lifecycle.current_env, RuntimeEvents(lifecycle.runtime_first_next, lifecycle.runtime_answering)
        ).mount(router)
        ExtensionsApi(lifecycle.current_env, lifecycle.agent_registered).mount(router)
        TelemetryApi(lifecycle.current_env, lifecycle.subscribe, self.spec.telemetry_api).mount(router)
        self._server.start()
        log.info(
            "sandbox started",
            runtime_api=self.runtime_api,
            namespace_mode=self.namespace_mode,
            resources=self.resource_limits,
            tmp_dir=str(self.tmp_dir),
            extensions=[name for name, _, _ in config.extensions],
        )

    def invoke(
        self,
        payload: bytes | str | object = b"{}",
        *,
        trace_id: str | None = None,
        client_context: str | None = None,
    ) -> InvokeResult:
        if self._lifecycle is None or self._closed:
            raise RuntimeError("the sandbox is not running; call start() or use it as a context manager")
        body = (
            payload
            if isinstance(payload, bytes)
            else payload.encode()
            if isinstance(payload, str)
            else json.dumps(payload).encode()
        )
        with self._invoke_lock:
            outcome = self._lifecycle.invoke(body, trace_id, client_context)
            warnings = self._guard.check() if self._guard is not None else []
        self.warnings.extend(warnings)
        for warning in warnings:
            log.warning("read-only file system violation", detail=warning)
        self.invocations.append(_summary(outcome))
        log.info(
            "invoke done",
            request_id=outcome.request_id,
            status=outcome.status,
            duration_ms=outcome.report["metrics"]["durationMs"],
        )
        return InvokeResult(
            outcome.status_code,
            outcome.body,
            outcome.request_id,
            outcome.status,
            outcome.error_type,
            warnings=warnings,
        )

    def shutdown(self, reason: str = "spindown") -> None:
        if self._closed:
            return
        self._closed = True
        with self._invoke_lock:
            if self._lifecycle is not None:
                self._lifecycle.shutdown(reason)
            if self._guard is not None:
                late = self._guard.check()
                self.warnings.extend(late)
        if self._server is not None:
            self._server.close()
        if self._bus is not None:
            self._bus.close()
        if self._layout is not None:
            self._layout.close()
        if self.cgroups is not None:
            self.cgroups.remove()
        if self._state_dir is not None:
            if self.spec.tmp_dir is None and self._keep_tmp:
                # The default /tmp lives in the state dir: keep only that.
                shutil.rmtree(self._state_dir / "opt", ignore_errors=True)
                (self._state_dir / "hosts").unlink(missing_ok=True)
            else:
                shutil.rmtree(self._state_dir, ignore_errors=True)
        log.info("sandbox stopped", reason=reason)

    # -- callbacks from the lifecycle ------------------------------------------------------

    def _agent_registered(self, agent: Agent) -> None:
        self.registered_extensions.append(
            {"name": agent.name, "external": agent.external, "events": list(agent.events)}
        )

    def _subscribed(self, agent: Agent, request: SubscriptionRequest) -> None:
        self.subscriptions.append(
            {
                "name": agent.name,
                "api": request.api,
                "schemaVersion": request.schema_version,
                "types": list(request.types),
            }
        )

    def _extensions_source(self, layer_dir: Path | None, empty_opt: Path) -> Path | None:
        if self.spec.extensions_dir is not None:
            return Path(self.spec.extensions_dir).resolve()
        candidate = (layer_dir or empty_opt) / "extensions"
        return candidate if candidate.is_dir() else None


def _discover_extensions(source: Path | None, seen_as: str) -> list[tuple[str, str, bool]]:
    """Every file in the extensions dir, in name order (RAPID launches them all)."""
    if source is None or not source.is_dir():
        return []
    found = []
    for entry in sorted(source.iterdir()):
        if entry.is_file():
            found.append((entry.name, f"{seen_as}/{entry.name}", os.access(entry, os.X_OK)))
    return found


def _summary(outcome: InvokeOutcome) -> InvocationSummary:
    metrics = outcome.report.get("metrics", {})
    cold = outcome.cold_init is not None or outcome.invoke_init is not None
    init = outcome.cold_init or outcome.invoke_init
    return InvocationSummary(
        requestId=outcome.request_id,
        status=outcome.status,
        durationMs=metrics.get("durationMs", 0.0),
        billedDurationMs=metrics.get("billedDurationMs", 0),
        maxMemoryUsedMB=metrics.get("maxMemoryUsedMB", 0),
        initDurationMs=round(init.duration_s * 1000, 3) if init is not None else None,
        coldStart=cold,
        response=decoded_response(outcome.body),
        errorType=outcome.error_type,
    )
