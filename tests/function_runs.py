"""Run a small function in the local sandbox through the wrapper, and read back what it produced.

The instruments' end-to-end tests use this: write the function's sources, run it
(with the file exporter, so the toolkit's own records land in ``/tmp``), then look
at the invoke results, the function's output lines, the platform's telemetry and the
exported records.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_wrapper_dev.sandbox import FunctionSpec, InvokeResult, Sandbox

EXPORTED_FILE = Path("lambda-wrapper") / "telemetry.ndjson"


@dataclass
class FunctionRun:
    results: list[InvokeResult]
    output: list[str]
    events: list[dict[str, Any]]
    exported: list[dict[str, Any]]

    def records(self, record_type: str) -> list[dict[str, Any]]:
        """The ``record`` of each exported event of ``record_type``, in export order."""
        return [event["record"] for event in self.exported if event["type"] == record_type]

    def diagnostics(self, event: str | None = None) -> list[dict[str, Any]]:
        """The toolkit's own diagnostic lines on stderr (``"logger": "lambda_wrapper"``)."""
        lines = []
        for line in self.output:
            parsed = parse_json_object(line) or {}
            if parsed.get("logger") == "lambda_wrapper" and event in (None, parsed.get("event")):
                lines.append(parsed)
        return lines

    def text(self) -> str:
        return "\n".join(self.output)


def parse_json_object(line: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def write_sources(task_root: Path, sources: dict[str, str]) -> Path:
    task_root.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (task_root / name).write_text(textwrap.dedent(source))
    return task_root


def run_function(
    layer_dir: Path,
    work_dir: Path,
    sources: dict[str, str],
    *,
    handler: str = "app.handler",
    env: dict[str, str] | None = None,
    payloads: list[bytes] | None = None,
    timeout_s: float = 3.0,
    memory_mb: int = 128,
    use_namespace: bool | None = None,
    trace_id: str | None = None,
) -> FunctionRun:
    """Start the function, invoke it once per payload, shut it down, collect everything.

    The shutdown (SIGTERM) makes the extension flush, so the export is complete.
    """
    task_root = write_sources(work_dir / "task", sources)
    tmp_dir = work_dir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    function_env = {"LAMBDA_WRAPPER_EXPORTERS": "file"}
    function_env.update(env or {})
    spec = FunctionSpec(
        task_root=task_root,
        handler=handler,
        layer_dir=layer_dir,
        use_wrapper=True,
        env=function_env,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        tmp_dir=tmp_dir,
    )
    with Sandbox(spec, use_namespace=use_namespace) as sandbox:
        results = [sandbox.invoke(payload, trace_id=trace_id) for payload in payloads or [b"{}"]]
    events, exported = list(sandbox.telemetry_events), read_exported(tmp_dir / EXPORTED_FILE)
    return FunctionRun(results, list(sandbox.function_output), events, exported)


def read_exported(path: Path) -> list[dict[str, Any]]:
    """The file exporter's NDJSON lines; a last line still being written is left out."""
    if not path.exists():
        return []
    parsed = (parse_json_object(line) for line in path.read_text().splitlines())
    return [event for event in parsed if event is not None]
