"""Run one function on a Lambda-like platform: AWS's official RIE or our sandbox.

Both implementations have the same shape, so a test can run the same scenario on
both and compare what a client observes. The RIE is the reference: the sandbox (and
our wrapper running on it) must agree with it wherever the RIE implements the
behaviour.

A "probe runtime" is a small Python program from ``tests/probes/`` that the
platform starts instead of awslambdaric. It talks raw HTTP to the Runtime and
Extensions APIs and writes what it saw to ``/tmp/observations.json``, which the test
reads back through ``Platform.tmp_dir`` (``/tmp`` inside the function is that
directory on the host).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from lambda_wrapper_dev.sandbox.mounts import Bind, Tmpfs, lambda_binds, namespace_argv, namespaces_available
from lambda_wrapper_dev.sandbox.rie import ensure_rie, free_loopback_ports, function_environment
from lambda_wrapper_dev.sandbox.runtime_image import RuntimeImage, ensure_runtime_image

RIE_IN_NAMESPACE = "/var/rapid/aws-lambda-rie"

TESTS_DIR = Path(__file__).resolve().parent
PROBES_DIR = TESTS_DIR / "probes"
OBSERVATIONS_FILE = "observations.json"
WRAPPER_PATH_IN_FUNCTION = "/opt/lambda-wrapper"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"


@dataclass
class FunctionUnderTest:
    """What to run; the platform-neutral subset of the sandbox's ``FunctionSpec``."""

    task_root: Path
    handler: str = "app.handler"
    layer_dir: Path | None = None
    use_wrapper: bool = False
    env: dict[str, str] = field(default_factory=dict)
    # A probe runtime (``probe_argv``) instead of /var/runtime/bootstrap.
    bootstrap_argv: list[str] | None = None
    function_name: str = "function"
    memory_mb: int = 128
    timeout_s: float = 3.0
    # RIE only: more read-only mounts, target path -> host directory (e.g. our layer
    # somewhere other than /opt while the function's own layer is at /opt).
    extra_binds: dict[str, Path] = field(default_factory=dict)
    # RIE only: run the RIE in its Lambda Managed Instances mode (it switches when
    # AWS_LAMBDA_MAX_CONCURRENCY is set). The runtime then runs as an unprivileged
    # user, so the platform lays out /var/lang the way Lambda does (see RiePlatform).
    max_concurrency: int | None = None
    # The runtime image's Python ("3.12"); None: the host's. The image's bootstrap sets
    # AWS_EXECUTION_ENV to match it, so awslambdaric runs in that version's real mode.
    python_version: str | None = None


@dataclass(frozen=True)
class Invocation:
    """What the invoking client got back."""

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def runtime_interpreter() -> str:
    """The bare interpreter of the runtime image (nothing of ours installed)."""
    return str(ensure_runtime_image().interpreter)


def probe_argv(script: str) -> list[str]:
    """Command line for a probe runtime.

    The probe runs with ``tests/probes`` as its task root, so the script name is
    relative to the working directory (``/var/task``) on every platform.
    """
    if not (PROBES_DIR / script).is_file():
        raise FileNotFoundError(PROBES_DIR / script)
    return [runtime_interpreter(), script]


def probe_function(script: str, **overrides: Any) -> FunctionUnderTest:
    return FunctionUnderTest(task_root=PROBES_DIR, bootstrap_argv=probe_argv(script), **overrides)


class Platform(ABC):
    """One function on one platform; start, invoke any number of times, stop."""

    name: str

    def __init__(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=f"lw-{self.name}-"))
        self.tmp_dir = self._workdir / "tmp"
        self.tmp_dir.mkdir()

    @abstractmethod
    def start(self, spec: FunctionUnderTest) -> None: ...

    @abstractmethod
    def invoke(self, payload: bytes = b"{}", trace_id: str | None = None) -> Invocation: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def output(self) -> str:
        """Everything the platform and the function printed (for failure messages)."""

    def clear_observations(self) -> None:
        (self.tmp_dir / OBSERVATIONS_FILE).unlink(missing_ok=True)

    def read_observations(self, timeout_s: float = 3.0) -> dict[str, Any]:
        """The probe's observations, once it marked them complete.

        A probe may still be writing when the invoke returns, so this waits. If the probe
        never finishes (the platform killed it), what it saved so far is returned with
        ``complete`` false (possibly nothing else), so the missing steps show up as test
        failures by name.
        """
        path = self.tmp_dir / OBSERVATIONS_FILE
        deadline = time.monotonic() + timeout_s
        while True:
            observations: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
            if observations.get("complete") or time.monotonic() > deadline:
                return {"complete": False, **observations, **self._start_counters()}
            time.sleep(0.01)

    def _start_counters(self) -> dict[str, int]:
        # Written by probe_http.count_start, straight to the file, before any API call.
        return {path.stem: int(path.read_text() or 0) for path in self.tmp_dir.glob("*.count")}

    def cleanup(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            self.cleanup()


class PortTaken(RuntimeError):
    """The RIE could not bind a port that was free when chosen."""


def post_invoke(url: str, payload: bytes, trace_id: str | None, timeout_s: float) -> Invocation:
    headers = {"Content-Type": "application/json"}
    if trace_id:
        headers["X-Amzn-Trace-Id"] = trace_id
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Invocation(response.status, response.read(), dict(response.headers.items()))
    except urllib.error.HTTPError as error:
        return Invocation(error.code, error.read(), dict(error.headers.items()))


def invoke_when_idle(platform: Platform, payload: bytes, timeout_s: float = 5.0) -> Invocation:
    """Invoke, retrying while every runtime worker is busy.

    RIE-LMI does not queue: an invoke that finds no worker waiting on ``/next`` (the
    previous one has answered but not asked again yet) fails at once with 400
    ``Runtime.Unavailable``, like a throttled invoke on Lambda.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = platform.invoke(payload)
        busy = result.status_code == 400 and b"Runtime.Unavailable" in result.body
        if not busy or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


def skip_unless_rie_can_run() -> None:
    """Skip (loudly) only when the RIE cannot run at all; CI is root, so never there."""
    reason = root_required_reason()
    if reason:
        print(f"SKIPPING RIE TEST: {reason}", file=sys.stderr)
        pytest.skip(reason)


def root_required_reason() -> str | None:
    """Why the RIE cannot run here, or None.

    The RIE needs a private mount namespace to see /var/task, /opt and /var/runtime,
    and that needs root. CI runs as root, so there these tests always run.
    """
    if os.geteuid() != 0:
        return "RIE tests need root (private mount namespace for /var/task, /opt, /var/runtime)"
    if not namespaces_available():
        return "RIE tests need util-linux unshare and mount"
    return None


class RiePlatform(Platform):
    """AWS's Runtime Interface Emulator, in its own private mount namespace."""

    name = "rie"

    def __init__(self) -> None:
        super().__init__()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self._workdir / "rie.log"
        self._invoke_url = ""
        self._timeout_s = 3.0

    def start(self, spec: FunctionUnderTest) -> None:
        reason = root_required_reason()
        if reason:
            raise RuntimeError(reason)
        image = ensure_runtime_image(spec.python_version)
        empty_dir = self._workdir / "empty"
        empty_dir.mkdir(exist_ok=True)
        binds: list[Bind | Tmpfs] = [
            *lambda_binds(
                spec.task_root.resolve(), spec.layer_dir, image.runtime_dir, self.tmp_dir, empty_dir
            )
        ]
        binds += [Bind(source, target) for target, source in spec.extra_binds.items()]
        command = spec.bootstrap_argv or ["/var/runtime/bootstrap"]
        if spec.max_concurrency is not None:
            binds += self._managed_instances_binds(image)
        # The RIE binary is bound in at a fixed path: wherever it is cached (/tmp, /root)
        # may be covered inside the namespace.
        binds.append(Bind(ensure_rie(), RIE_IN_NAMESPACE))
        # A port free when probed may be taken before the RIE binds it: try new ones then.
        for attempt in range(3):
            try:
                self._start_rie(spec, binds, command)
                return
            except PortTaken:
                if attempt == 2:
                    raise

    def _start_rie(self, spec: FunctionUnderTest, binds: list[Bind | Tmpfs], command: list[str]) -> None:
        invoke_port, runtime_port = free_loopback_ports(2)
        rie_argv = [
            RIE_IN_NAMESPACE,
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{invoke_port}",
            "--runtime-api-address",
            f"127.0.0.1:{runtime_port}",
            *command,
        ]
        self._timeout_s = spec.timeout_s
        self._invoke_url = f"http://127.0.0.1:{invoke_port}{INVOKE_PATH}"
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                namespace_argv(binds, rie_argv),
                env=self._environment(spec),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_listening(invoke_port)

    def _managed_instances_binds(self, image: RuntimeImage) -> list[Bind | Tmpfs]:
        """What the unprivileged runtime of the RIE's Managed Instances mode needs.

        There the RIE runs the runtime as uid 993, which cannot write the host's /tmp
        directory of ours nor reach an interpreter under a private home directory.
        So ``/tmp`` becomes world-writable (sticky, like Lambda's), the image's bare
        virtualenv is mounted at ``/var/lang`` (Lambda's layout), and the base
        installation it links to is mounted at its own path, below a tmpfs that hides
        the closed directory above it (e.g. ``/root``).
        """
        self.tmp_dir.chmod(0o1777)
        # This RIE mode ignores the command line and runs the first of /var/task,
        # /opt and /var/runtime's ``bootstrap``: the runtime's one gets the twin that
        # names /var/lang/bin/python3.X, as Lambda's does.
        items: list[Bind | Tmpfs] = [
            Bind(image.lang_dir, "/var/lang"),
            Bind(image.lmi_bootstrap, "/var/runtime/bootstrap"),
        ]
        base = image.base_prefix
        closed = next(
            (
                parent
                for parent in reversed(base.parents)
                if parent != Path("/") and not os.stat(parent).st_mode & 0o001
            ),
            None,
        )
        if closed is not None:
            items += [Tmpfs(str(closed)), Bind(base, str(base))]
        return items

    def _environment(self, spec: FunctionUnderTest) -> dict[str, str]:
        env = function_environment(spec.handler, spec.function_name, spec.memory_mb, spec.timeout_s)
        if spec.use_wrapper:
            env["AWS_LAMBDA_EXEC_WRAPPER"] = WRAPPER_PATH_IN_FUNCTION
        if spec.max_concurrency is not None:
            # The RIE then sets AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances
            # (and AWS_LAMBDA_LOG_FORMAT=json) for the runtime itself.
            env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(spec.max_concurrency)
        env.update(spec.env)
        return env

    def _wait_until_listening(self, port: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                output = self.output()
                kind = PortTaken if "address already in use" in output else RuntimeError
                raise kind(f"the RIE exited with {self._process.returncode}\n{output[-4000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
            time.sleep(0.01)
        raise RuntimeError(f"the RIE did not listen on port {port} within {timeout_s} s\n{self.output()}")

    def invoke(self, payload: bytes = b"{}", trace_id: str | None = None) -> Invocation:
        if not self._invoke_url:
            raise RuntimeError("start() the platform first")
        return post_invoke(self._invoke_url, payload, trace_id, self._timeout_s + 15)

    def terminate(self, timeout_s: float = 10.0) -> int | None:
        """Shut the RIE down as Lambda does (SIGTERM): it stops the runtime gracefully.

        Returns the RIE's exit status, or None when it was not running or did not exit
        within ``timeout_s``; ``stop()`` still kills whatever is left.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # The RIE starts the runtime in a process group of its own, so killing our
        # group alone could orphan it: remember every descendant first.
        descendants = _descendants(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        process.wait(timeout=10)
        _wait_until_gone(descendants, timeout_s=5)

    def output(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""


def _wait_until_gone(processes: list[psutil.Process], timeout_s: float) -> None:
    # psutil.wait_procs backs off to long sleeps for processes that are not our
    # children; poll briefly instead (a zombie awaiting its reaper counts as gone).
    deadline = time.monotonic() + timeout_s
    for process in processes:
        while time.monotonic() < deadline:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.005)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class SandboxPlatform(Platform):
    """Our own local platform, ``lambda_wrapper_dev.sandbox``."""

    name = "sandbox"

    def __init__(self) -> None:
        super().__init__()
        self._sandbox: Any = None
        self._stopped_sandbox: Any = None

    def start(self, spec: FunctionUnderTest) -> None:
        from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

        if spec.extra_binds:
            raise NotImplementedError("the sandbox has no extra mounts; use the RIE for this scenario")
        function_spec = FunctionSpec(
            task_root=spec.task_root.resolve(),
            handler=spec.handler,
            layer_dir=spec.layer_dir,
            use_wrapper=spec.use_wrapper,
            env=dict(spec.env),
            memory_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
            tmp_dir=self.tmp_dir,
            function_name=spec.function_name,
            bootstrap_argv=spec.bootstrap_argv,
            python_version=spec.python_version,
        )
        self._sandbox = Sandbox(function_spec)
        self._sandbox.start()

    def invoke(self, payload: bytes = b"{}", trace_id: str | None = None) -> Invocation:
        if self._sandbox is None:
            raise RuntimeError("start() the platform first")
        result = self._sandbox.invoke(payload=payload, trace_id=trace_id)
        return Invocation(result.status_code, result.body, dict(getattr(result, "headers", {}) or {}))

    def stop(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            self._stopped_sandbox = sandbox
            sandbox.shutdown("spindown")

    def output(self) -> str:
        sandbox = self._sandbox or self._stopped_sandbox
        return "" if sandbox is None else str(getattr(sandbox, "function_output", ""))


PLATFORMS: dict[str, type[Platform]] = {"rie": RiePlatform, "sandbox": SandboxPlatform}
