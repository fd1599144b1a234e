"""Run one variant in one fresh execution environment, on the sandbox or on AWS's RIE.

Both platforms give the same two things: ``invoke()`` timed from the caller's side,
and, after ``stop()``, what the platform itself recorded (``Observations``): the Init
duration (runtime process start to its first ``/next``), per-invocation runtime and
report durations, post-runtime extension time, and dropped-log counts.

The sandbox runs in this process (``lambda_wrapper_dev.sandbox``); the RIE is the official
binary in a private mount namespace, like ``tests/platforms.py`` runs it, with its own
small runner here so the benchmark does not depend on test code.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lambda_wrapper_dev.sandbox.mounts import lambda_binds, namespace_argv, namespaces_available
from lambda_wrapper_dev.sandbox.rie import ensure_rie, free_loopback_ports, function_environment
from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
MEMORY_MB = 1024  # generous, so that no variant runs into the limit
TIMEOUT_S = 30.0  # the throughput test prints up to 100,000 lines in one invocation
FUNCTION_NAME = "bench"


@dataclass(frozen=True)
class EnvironmentSpec:
    """One variant, resolved to paths: what to start."""

    task_root: Path
    handler: str
    layer_dir: Path | None
    env: dict[str, str]
    memory_mb: int = MEMORY_MB
    python_version: str | None = None  # the runtime's, X.Y; None: this interpreter's


@dataclass(frozen=True)
class CallerView:
    latency_ms: float
    ok: bool
    detail: str = ""


@dataclass
class PlatformInvocation:
    runtime_ms: float | None  # invoke start to the runtime's response (runtimeDone / RTDONE)
    report_ms: float | None  # the platform's Duration, including waiting for extensions
    extension_overhead_ms: float | None  # post-runtime time spent waiting for extensions
    max_memory_mb: float | None = None  # the platform's own figure, when it has a real one
    billed_ms: float | None = None  # the platform's Billed Duration


@dataclass
class Observations:
    init_ms: float | None = None
    invocations: list[PlatformInvocation] = field(default_factory=list)
    logs_dropped_records: int = 0
    logs_dropped_events: int = 0
    output_lines: list[str] = field(default_factory=list)


class FunctionEnvironment(ABC):
    platform: str

    @abstractmethod
    def invoke(self, payload: bytes) -> CallerView: ...

    @abstractmethod
    def runtime_pid_roots(self) -> list[int]:
        """Processes under which the runtime process lives (searched for its peak RSS)."""

    @abstractmethod
    def stop(self) -> Observations: ...

    def runtime_peak_rss_mb(self) -> float | None:
        """VmHWM of the runtime process (``python ... bootstrap.py``), in MiB, read live."""
        pid = runtime_pid(self.runtime_pid_roots())
        return None if pid is None else _vm_hwm_kib(pid) / 1024.0

    def runtime_cpu_ms(self) -> float | None:
        """CPU time the runtime process has used so far, all its threads, in ms (read live).

        Unlike wall time this hardly moves when other work competes for the CPU, which
        makes it the steadier number on a busy machine. It covers the whole exec chain
        (bootstrap script, exec wrapper, interpreter): they are one process.
        """
        pid = runtime_pid(self.runtime_pid_roots())
        return None if pid is None else _cpu_ns(pid) / 1e6

    def runtime_main_thread_cpu_ms(self) -> float | None:
        """CPU time of the runtime's main thread so far, in ms: where awslambdaric (3.10 and
        3.11, and the handler call on every version) runs the handler, and where whatever a
        wrapper does on the handler's own time shows."""
        pid = runtime_pid(self.runtime_pid_roots())
        if pid is None:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e6
        return None

    @abstractmethod
    def platform_cpu_ms(self) -> float:
        """CPU time the platform itself (not the function's processes) has used so far, in ms."""


def runtime_pid(roots: list[int]) -> int | None:
    """The runtime process: the root or descendant running ``bootstrap.py`` (after every exec)."""
    for root in roots:
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(root)
            for process in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.Error, OSError):
                    if any(arg.endswith("bootstrap.py") for arg in process.cmdline()):
                        return process.pid
    return None


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise OSError(f"no VmHWM for {pid}")


def _cpu_ns(pid: int) -> int:
    # schedstat's first field is on-CPU time in ns, per thread; stat's utime/stime tick at 10 ms.
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


class SandboxEnvironment(FunctionEnvironment):
    """``lambda_wrapper_dev.sandbox.Sandbox``, in this process."""

    platform = "sandbox"

    def __init__(self, spec: EnvironmentSpec) -> None:
        from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

        self._workdir = Path(tempfile.mkdtemp(prefix="lw-bench-"))
        function_spec = FunctionSpec(
            task_root=spec.task_root,
            handler=spec.handler,
            layer_dir=spec.layer_dir,
            use_wrapper=False,
            env=dict(spec.env),
            memory_mb=spec.memory_mb,
            python_version=spec.python_version,
            timeout_s=TIMEOUT_S,
            tmp_dir=self._workdir / "tmp",
            function_name=FUNCTION_NAME,
        )
        self._sandbox = Sandbox(function_spec)
        self._sandbox.start()

    def invoke(self, payload: bytes) -> CallerView:
        started = time.perf_counter()
        result = self._sandbox.invoke(payload)
        latency_ms = (time.perf_counter() - started) * 1000.0
        ok = result.status == "success"
        return CallerView(latency_ms, ok, "" if ok else f"{result.status}: {result.body[:300]!r}")

    def runtime_pid_roots(self) -> list[int]:
        # This environment's own process groups where the sandbox tells them (several may
        # live side by side in this process), else every child of this process.
        return self._sandbox.process_groups or [os.getpid()]

    def platform_cpu_ms(self) -> float:
        # The sandbox runs in this process: its threads (output readers, telemetry bus,
        # API servers) and this caller's few requests. Not schedstat: that forgets the
        # threads that have ended (each subscriber's sender, for one).
        return time.process_time() * 1000.0

    def stop(self) -> Observations:
        try:
            self._sandbox.shutdown("spindown")
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)
        return sandbox_observations(self._sandbox.telemetry_events, list(self._sandbox.function_output))


def sandbox_observations(events: list[dict[str, Any]], output_lines: list[str]) -> Observations:
    """What the sandbox's platform telemetry says about one environment."""
    observations = Observations(output_lines=output_lines)
    runtime_done: dict[str, float | None] = {}
    for event in events:
        kind, record = event.get("type"), event.get("record")
        if not isinstance(record, dict):
            continue
        metrics = record.get("metrics") or {}
        if kind == "platform.initReport" and observations.init_ms is None:
            observations.init_ms = metrics.get("durationMs")
        elif kind == "platform.runtimeDone":
            runtime_done[record.get("requestId", "")] = metrics.get("durationMs")
        elif kind == "platform.report":
            spans = {span.get("name"): span.get("durationMs") for span in record.get("spans") or []}
            observations.invocations.append(
                PlatformInvocation(
                    runtime_ms=runtime_done.get(record.get("requestId", "")),
                    report_ms=metrics.get("durationMs"),
                    # No span means no extension was registered for INVOKE: nothing to wait for.
                    extension_overhead_ms=spans.get("extensionOverhead", 0.0),
                    max_memory_mb=metrics.get("maxMemoryUsedMB"),
                    billed_ms=metrics.get("billedDurationMs"),
                )
            )
        elif kind == "platform.logsDropped":
            observations.logs_dropped_events += 1
            observations.logs_dropped_records += int(record.get("droppedRecords") or 0)
    return observations


# RIE log lines (RAPID's own wording).
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_RTDONE = re.compile(r"INVOKE RTDONE\(status: [^,]*, produced bytes: \d+, duration: ([0-9.]+)ms\)")
_REPORT = re.compile(r"^REPORT RequestId: \S+.*?\tDuration: ([0-9.]+) ms")
_BILLED = re.compile(r"\tBilled Duration: ([0-9.]+) ms")


class RieEnvironment(FunctionEnvironment):
    """The official Runtime Interface Emulator running the managed-runtime chain."""

    platform = "rie"

    def __init__(self, spec: EnvironmentSpec) -> None:
        reason = rie_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        image = ensure_runtime_image(spec.python_version)
        self._workdir = Path(tempfile.mkdtemp(prefix="lw-bench-rie-"))
        tmp_dir, empty_dir = self._workdir / "tmp", self._workdir / "empty"
        tmp_dir.mkdir()
        empty_dir.mkdir()
        binds = lambda_binds(spec.task_root, spec.layer_dir, image.runtime_dir, tmp_dir, empty_dir)
        invoke_port, runtime_port = free_loopback_ports(2)
        argv = [
            str(ensure_rie()),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{invoke_port}",
            "--runtime-api-address",
            f"127.0.0.1:{runtime_port}",
            "/var/runtime/bootstrap",
        ]
        self._log_path = self._workdir / "rie.log"
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                namespace_argv(binds, argv),
                env=_rie_environment(spec, str(image.lang_dir / "bin")),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_listening(invoke_port)
        self._connection = http.client.HTTPConnection("127.0.0.1", invoke_port, timeout=TIMEOUT_S + 15)

    def invoke(self, payload: bytes) -> CallerView:
        started = time.perf_counter()
        self._connection.request(
            "POST", INVOKE_PATH, body=payload, headers={"Content-Type": "application/json"}
        )
        response = self._connection.getresponse()
        body = response.read()
        latency_ms = (time.perf_counter() - started) * 1000.0
        ok = response.status == 200 and b'"errorType"' not in body[:2000]
        return CallerView(latency_ms, ok, "" if ok else f"HTTP {response.status}: {body[:300]!r}")

    def runtime_pid_roots(self) -> list[int]:
        return [self._process.pid]

    def platform_cpu_ms(self) -> float:
        # ``unshare`` and ``sh`` exec the RIE: the process we started is the RIE itself.
        return _cpu_ns(self._process.pid) / 1e6

    def stop(self) -> Observations:
        self._connection.close()
        # The RIE starts the runtime in a process group of its own: collect it first, and
        # kill it before the RIE, so that the extension never sees the platform vanish
        # (which it would rightly report as a warning).
        descendants: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            descendants = psutil.Process(self._process.pid).children(recursive=True)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(descendants, timeout=2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        text = self._log_path.read_text(errors="replace")
        shutil.rmtree(self._workdir, ignore_errors=True)
        return rie_observations(text)

    def _wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the RIE exited with {self._process.returncode}: "
                    f"{self._log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.005)
        raise RuntimeError(f"the RIE did not listen on {port}")


def rie_observations(log_text: str) -> Observations:
    """Parse RAPID's log: INIT REPORT, then per invoke INVOKE RTDONE and REPORT, in order."""
    observations = Observations(output_lines=log_text.splitlines())
    pending_runtime: float | None = None
    for line in observations.output_lines:
        if observations.init_ms is None and (match := _INIT_REPORT.search(line)):
            observations.init_ms = float(match.group(1))
        elif match := _RTDONE.search(line):
            pending_runtime = float(match.group(1))
        elif match := _REPORT.search(line):
            report_ms = float(match.group(1))
            overhead = None if pending_runtime is None else max(0.0, report_ms - pending_runtime)
            billed = _BILLED.search(line)
            observations.invocations.append(PlatformInvocation(
                pending_runtime, report_ms, overhead, billed_ms=float(billed.group(1)) if billed else None))
            pending_runtime = None
    return observations


def _rie_environment(spec: EnvironmentSpec, interpreter_bin: str) -> dict[str, str]:
    # The same variables the sandbox sets, plus the variant's.
    # The RIE honours the memory size only as a number: it reports it and hands it to the
    # runtime (AWS_LAMBDA_FUNCTION_MEMORY_SIZE); it limits neither memory nor CPU.
    env = function_environment(spec.handler, FUNCTION_NAME, spec.memory_mb, TIMEOUT_S, interpreter_bin)
    env.update({
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_ACCESS_KEY_ID": "ASIABENCHFAKE",
        "AWS_SECRET_ACCESS_KEY": "bench/fake-secret",
        "AWS_SESSION_TOKEN": "bench-fake-token",
    })
    env.update(spec.env)
    return env


def rie_unavailable_reason() -> str | None:
    """Why the RIE cannot run here (it needs root for the mount namespace), or None."""
    if not namespaces_available():
        return "the RIE needs root and util-linux unshare/mount for /var/task, /opt and /var/runtime"
    return None


PLATFORMS: dict[str, type[FunctionEnvironment]] = {"sandbox": SandboxEnvironment, "rie": RieEnvironment}


def start_environment(platform: str, spec: EnvironmentSpec) -> FunctionEnvironment:
    environment_class: Any = PLATFORMS[platform]
    environment: FunctionEnvironment = environment_class(spec)
    return environment
