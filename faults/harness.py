"""Running a function in the sandbox for a scenario, and reading what came out of it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambda_wrapper.export.readback import read_segment
from lambda_wrapper_dev.sandbox import FunctionSpec, InvokeResult, Sandbox

from .context import Context, SessionRecord
from .functions import FILL, MARK, WRITE_VIOLATION

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MARKER = re.compile(MARK.encode() + rb" ([A-Za-z0-9_.:-]+)")
FILLER = re.compile(FILL.encode() + rb" ([A-Za-z0-9_.:-]+)")


@dataclass
class Session:
    """A running sandbox plus what the scenario sent it."""

    sandbox: Sandbox
    tmp_dir: Path
    event_canary: str
    results: list[InvokeResult] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> InvokeResult:
        # Every event carries the canary: no scenario may ever log it.
        result = self.sandbox.invoke({**event, "canary": self.event_canary})
        self.results.append(result)
        return result

    def durations(self, start: int = 0, stop: int | None = None) -> list[float]:
        return [summary.durationMs for summary in self.sandbox.invocations[start:stop]]

    @property
    def peak_mb(self) -> int:
        return max((summary.maxMemoryUsedMB for summary in self.sandbox.invocations), default=0)


@contextlib.contextmanager
def session(
    ctx: Context,
    scenario: str,
    *,
    wrapper: bool = True,
    env: dict[str, str] | None = None,
    handler: str = "app.handler",
    timeout_s: float = 3.0,
    memory_mb: int = 128,
    init_timeout_s: float = 10.0,
    tmp_dir: Path | None = None,
) -> Iterator[Session]:
    """A sandbox for ``scenario``; its output is kept for the secrets scan when it ends.

    Without the wrapper the layer is not mounted either: that is the function as its
    owner would run it without us.
    """
    tmp = tmp_dir or ctx.new_tmp(f"{scenario}-{'wrapped' if wrapper else 'bare'}")
    spec = FunctionSpec(
        task_root=ctx.task_root,
        handler=handler,
        layer_dir=ctx.layer_dir if wrapper else None,
        use_wrapper=wrapper,
        env={**ctx.canaries.env(), **(env or {})},
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        tmp_dir=tmp,
        init_timeout_s=init_timeout_s,
    )
    sandbox = Sandbox(spec)
    sandbox.start()
    try:
        yield Session(sandbox, tmp, ctx.canaries.event_field)
    finally:
        sandbox.shutdown()
        record(ctx, scenario, wrapper, sandbox)


def record(ctx: Context, scenario: str, wrapped: bool, sandbox: Sandbox) -> None:
    output = list(sandbox.function_output)
    ctx.add_artefact(f"{scenario}: function output", "\n".join(output))
    ctx.add_artefact(f"{scenario}: extension output", "\n".join(sandbox.extension_output))
    violations = [line for line in output if WRITE_VIOLATION in line]
    logs = ctx.work_dir / "logs"
    logs.mkdir(exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in scenario)[:60]
    kind = "wrapped" if wrapped else "bare"
    (logs / f"{slug}-{kind}-{id(sandbox):x}.log").write_text("\n".join(output) + "\n")
    ctx.add_session(
        SessionRecord(scenario, wrapped, sandbox.namespace_mode, list(sandbox.warnings), violations)
    )


# -- what the caller saw ---------------------------------------------------------------


def caller_view(result: InvokeResult) -> tuple[object, ...]:
    """Status code, platform status, errorType and errorMessage (ids masked), or the body."""
    try:
        document = json.loads(result.body)
    except ValueError:
        document = result.body.decode(errors="replace")
    if isinstance(document, dict) and "errorType" in document:
        message = document.get("errorMessage")
        masked = UUID.sub("<id>", message) if isinstance(message, str) else message
        return (result.status_code, result.status, document["errorType"], masked)
    if isinstance(document, str):
        document = UUID.sub("<id>", document)
    return (result.status_code, result.status, result.error_type, document)


def describe_view(view: tuple[object, ...]) -> str:
    status_code, status, error_type = view[0], view[1], view[2]
    return f"{status_code} {status}" + (f" {error_type}" if error_type else "")


# -- diagnostics and exported data ----------------------------------------------------------


def diagnostics(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The toolkit's own JSON lines among the function's output."""
    found = []
    for line in lines:
        if '"lambda_wrapper"' not in line:
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("logger") == "lambda_wrapper":
            found.append(document)
    return found


def counted_drops(diags: list[dict[str, Any]], exporter: str, record_type: str | None = None,
                  at_shutdown: bool = True) -> int:
    """Events the pipeline said it dropped for ``exporter``: permanent rejections,
    backlog drops, records lost at shutdown and spool overflow (a running total per process, so each run of
    increasing values counts once).

    With ``record_type`` (e.g. ``"function"``) only the drops the pipeline counted for
    that type (``droppedByType``): lost log lines must be matched by counted log lines,
    not by platform events that went with them. ``at_shutdown=False`` leaves out what
    was counted at shutdown.
    """

    def amount(d: dict[str, Any], total_key: str) -> int:
        if record_type is None:
            return int(d.get(total_key) or 0)
        by_type = d.get("droppedByType")
        return int(by_type.get(record_type) or 0) if isinstance(by_type, dict) else 0

    rejected = sum(
        amount(d, "dropped")
        for d in diags
        if d.get("event") in ("export_rejected", "export_backlog_dropped") and d.get("exporter") == exporter
    )
    # Counted at shutdown (what was received and not exported before the SIGKILL, and
    # batches that arrived after that report), one line per report.
    shutdown_losses = sum(
        amount(d["exporters"][exporter], "droppedRecords")
        for d in diags
        if at_shutdown
        and d.get("event") == "records_lost"
        and isinstance(d.get("exporters"), dict)
        and exporter in d["exporters"]
    )
    overflow, last = 0, 0
    for d in diags:
        if d.get("event") == "spool_overflow" and d.get("exporter") == exporter:
            value = amount(d, "droppedRecords")
            overflow += value - last if value >= last else value
            last = value
    return rejected + shutdown_losses + overflow


def exported_file_records(tmp_dir: Path) -> list[dict[str, Any]]:
    path = tmp_dir / "lambda-wrapper" / "telemetry.ndjson"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def markers(data: bytes | str) -> set[str]:
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    return {match.decode() for match in MARKER.findall(raw)}


def fills(data: bytes | str) -> set[str]:
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    return {match.decode() for match in FILLER.findall(raw)}


def spool_root(tmp_dir: Path) -> Path:
    return tmp_dir / "lambda-wrapper" / "spool"


def tree_bytes(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def undelivered_in_spool(tmp_dir: Path, exporter: str) -> list[bytes]:
    """Bodies still waiting in ``exporter``'s spool (after its cursor): exported at the
    next Init, so pending rather than lost."""
    bodies: list[bytes] = []
    root = spool_root(tmp_dir) / exporter
    if not root.is_dir():
        return bodies
    for directory in sorted(root.iterdir()):
        cursor_file = directory / "cursor"
        cursor = int(cursor_file.read_text().strip() or 0) if cursor_file.exists() else 0
        for segment in sorted(directory.glob("*.seg")):
            bodies.extend(body for seq, body in read_segment(str(segment)) if seq > cursor)
    return bodies


def process_sample(pid: int) -> dict[str, int]:
    """RSS, fds and threads of a process, read from the host's /proc.

    ``fds`` counts files, pipes and listening sockets; ``connections`` counts
    connected sockets apart, because a platform POST that the freeze caught between
    its answer and its close is open at a sample and gone at the next: transient, not
    a leak, so it is bounded rather than required to be constant.
    """
    fds = connections = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:") and _connected_socket(pid, target):
            connections += 1
        else:
            fds += 1
    sample = {"fds": fds, "connections": connections}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads", "RssAnon"):
                sample[key] = int(value.split()[0])
    return sample


def _connected_socket(pid: int, target: str) -> bool:
    """True unless the socket's inode is a listening TCP socket (state 0A) of the process."""
    inode = target[len("socket:["):-1]
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as handle:
                for line in handle.readlines()[1:]:
                    fields = line.split()
                    if len(fields) > 9 and fields[9] == inode:
                        return fields[3] != "0A"
        except OSError:
            continue
    return False  # not TCP (unix sockets, e.g. the wakeup pipe's peers): count as a file


class DiskWatcher:
    """The most bytes a tree held, polled every few ms on a thread: a batch over the
    spool cap lives only until the next one arrives, which samples taken between
    invocations can miss."""

    def __init__(self, path: Path, interval_s: float = 0.005) -> None:
        self.path = path
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="faults-disk-watcher")

    def __enter__(self) -> DiskWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, tree_bytes(self.path))
