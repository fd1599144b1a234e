"""``lambda-wrapper run``: invoke a function in the local sandbox and show what Lambda would.

    lambda-wrapper run --task-root DIR --handler MOD.FN [--runtime pythonX.Y] [--layer DIR|ZIP]
        [--no-wrapper] [--event JSON|@FILE] [--invokes N] [--env K=V]... [--memory MB]
        [--timeout S] [--tmp DIR | --keep] [--no-telemetry-api] [--output text|json]

``--runtime`` picks the Lambda Python runtime (default: the host's Python version): the
runtime image, its interpreter and ``AWS_EXECUTION_ENV`` follow it, and like Lambda's
managed runtimes the image carries boto3 and botocore behind the function's own code.
Without ``--layer`` the layer is built from the working tree. ``--tmp DIR`` is the
function's ``/tmp`` and stays; by default a fresh directory serves and is removed after
the run unless ``--keep`` is given (the output then says where it is). What the file
exporter captured is counted wherever ``LAMBDA_WRAPPER_FILE_PATH`` puts it. The
per-invocation table comes from the platform's ``platform.report`` telemetry, or, when
the wrapper reported invocations itself (``--no-telemetry-api`` makes the sandbox
refuse the subscription with the RIE's 202), from the supervisor's own records in the
captured file, and says so.
As root, ``--memory`` is enforced like on Lambda (memory limit, the memory size's
share of a vCPU, OOM kills as ``Runtime.OutOfMemory``; see ``cgroups``); the
output says whether it is.

Exit status: 0 when every invoke succeeded, 1 when one did not (or the sandbox
failed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog

from lambda_wrapper import settings as wrapper_settings

from .layer_source import working_tree_layer_dir
from .platform import FunctionSpec, Sandbox
from .results import InvokeResult
from .runtime_image import LAMBDA_PYTHON_VERSIONS, available_python_versions, host_python_version

log = structlog.get_logger("lambda_wrapper_dev.sandbox.run")

FILE_EXPORTER = "the file exporter"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-wrapper run", description="Invoke a function in the local Lambda sandbox."
    )
    parser.add_argument(
        "--task-root", required=True, type=Path, help="the function's code directory (/var/task)"
    )
    parser.add_argument(
        "--handler", required=True, help="MODULE.FUNCTION, as in the function's configuration"
    )
    parser.add_argument(
        "--runtime",
        metavar="pythonX.Y",
        help="Lambda Python runtime, e.g. python3.12 (default: the host's version, "
        f"python{host_python_version()})",
    )
    parser.add_argument(
        "--layer", type=Path, help="layer directory or zip (default: built from the working tree)"
    )
    parser.add_argument("--no-wrapper", action="store_true", help="do not set AWS_LAMBDA_EXEC_WRAPPER")
    parser.add_argument("--event", default="{}", help="event JSON, or @FILE to read it from a file")
    parser.add_argument("--invokes", type=int, default=1, help="how many times to invoke (default 1)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="function environment variable"
    )
    parser.add_argument("--memory", type=int, default=128, metavar="MB", help="memory size (default 128)")
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="function timeout (default 3)"
    )
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--tmp", type=Path, metavar="DIR", help="directory that serves as the function's /tmp (kept)"
    )
    kept.add_argument(
        "--keep", action="store_true", help="keep the function's fresh /tmp after the run (default: removed)"
    )
    parser.add_argument(
        "--no-telemetry-api", action="store_true",
        help="answer Telemetry API subscriptions 202 Telemetry.NotSupported, as the RIE does",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    try:
        event = read_event(args.event)
        env = parse_env(args.env)
        # Locally the point is to see what the extension captured: add the file
        # exporter to the default (emf) unless the user chose exporters.
        env.setdefault("LAMBDA_WRAPPER_EXPORTERS", "emf,file")
        python_version = runtime_version(args.runtime)
    except ValueError as error:
        parser.error(str(error))
    if args.invokes < 1:
        parser.error("--invokes must be at least 1")
    with tempfile.TemporaryDirectory(prefix="lambda-wrapper-layer-") as scratch:
        try:
            layer_dir = resolve_layer(args.layer, Path(scratch), required=not args.no_wrapper)
        except (OSError, RuntimeError, zipfile.BadZipFile) as error:
            log.error("no layer", error=str(error))
            return 1
        # The sandbox always keeps a /tmp it is given: it is ours to remove, after the
        # telemetry file it holds has been read.
        function_tmp = args.tmp or Path(tempfile.mkdtemp(prefix="lambda-wrapper-run-"))
        spec = FunctionSpec(
            task_root=args.task_root,
            handler=args.handler,
            layer_dir=layer_dir,
            use_wrapper=not args.no_wrapper,
            env=env,
            memory_mb=args.memory,
            timeout_s=args.timeout,
            tmp_dir=function_tmp,
            python_version=python_version,
            telemetry_api=not args.no_telemetry_api,
        )
        keep = args.tmp is not None or args.keep
        try:
            return run(spec, event, args.invokes, args.output, sys.stdout, keep_tmp=keep)
        finally:
            if not keep:
                shutil.rmtree(function_tmp, ignore_errors=True)


def runtime_version(runtime: str | None) -> str:
    """The Python version of a ``--runtime`` name that can run here (default: the host's)."""
    if runtime is None:
        return host_python_version()
    available = available_python_versions()
    version = runtime.removeprefix("python")
    if runtime.startswith("python") and version in available:
        return version
    names = ", ".join(f"python{item}" for item in available) or "none"
    if runtime.startswith("python") and version in LAMBDA_PYTHON_VERSIONS:
        reason = f"no python{version} interpreter is installed here"
    else:
        supported = ", ".join(f"python{item}" for item in LAMBDA_PYTHON_VERSIONS)
        reason = f"not a Lambda Python runtime the sandbox serves ({supported})"
    raise ValueError(f"--runtime {runtime!r}: {reason}; available here: {names}")


def run(
    spec: FunctionSpec, event: bytes, invokes: int, output: str, out: TextIO, keep_tmp: bool = True
) -> int:
    """Run the invokes and print what happened; ``keep_tmp`` says whether ``spec.tmp_dir`` stays."""
    sandbox = Sandbox(spec)
    results: list[InvokeResult] = []
    log_slices: list[list[str]] = []
    try:
        sandbox.start()
        if output == "text":
            describe_sandbox(sandbox, spec, keep_tmp, out)
        for _ in range(invokes):
            seen, seen_extension = len(sandbox.function_output), len(sandbox.extension_output)
            results.append(sandbox.invoke(event))
            log_slices.append(
                [f"log | {line}" for line in sandbox.function_output[seen:]]
                + [f"ext | {line}" for line in sandbox.extension_output[seen_extension:]]
            )
            if output == "text":
                print_invoke(len(results), invokes, results[-1], log_slices[-1], out)
    except (OSError, RuntimeError, ValueError) as error:
        log.error("sandbox failed", error=str(error))
        sandbox.shutdown()
        return 1
    sandbox.shutdown()
    report = extension_report(sandbox, spec.env)
    if output == "json":
        json.dump(json_document(sandbox, spec, report, keep_tmp), out, indent=2)
        out.write("\n")
    else:
        print_table(sandbox, out, report["selfReports"])
        print_extension(report, sandbox, out)
        print_kept(sandbox, report, keep_tmp, out)
    return 0 if all(result.status == "success" for result in results) else 1


def configure_logging() -> None:
    """Readable console lines on stderr (stdout carries the results), colours only on a tty."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        # Looked up per logger, not bound once: sys.stderr may be replaced later.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )


def read_event(value: str) -> bytes:
    raw = Path(value[1:]).read_bytes() if value.startswith("@") else value.encode()
    try:
        json.loads(raw)
    except ValueError as error:
        raise ValueError(f"the event is not valid JSON: {error}") from error
    return raw


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--env takes KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def resolve_layer(layer: Path | None, scratch: Path, required: bool) -> Path | None:
    if layer is None:
        try:
            return working_tree_layer_dir()
        except (RuntimeError, OSError, ImportError) as error:
            if required:
                raise RuntimeError(f"cannot build the layer from the working tree: {error}") from error
            log.warning("running without a layer", reason=str(error))
            return None
    if layer.is_dir():
        return layer
    return extract_zip(layer, scratch / "layer")


def extract_zip(archive: Path, target: Path) -> Path:
    """Extract a layer zip keeping Unix modes (zipfile drops them; the wrapper must stay 755)."""
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            extracted = Path(bundle.extract(member, target))
            mode = (member.external_attr >> 16) & 0o7777
            if mode:
                extracted.chmod(mode)
    return target


def describe_sandbox(sandbox: Sandbox, spec: FunctionSpec, keep_tmp: bool, out: TextIO) -> None:
    if sandbox.namespace_mode:
        mode = "mount namespace: /var/task and /opt read-only, as on Lambda"
    else:
        mode = (
            "host mode (no root): /var/task and /opt are not read-only here; writes to them are detected "
            "after each invoke and reported as warnings"
        )
    out.write(f"sandbox: {mode}\n")
    out.write(f"runtime: python{spec.python_version or host_python_version()}\n")
    out.write(f"resources: {sandbox.resource_limits}\n")
    kept = "kept" if keep_tmp else "removed after the run; --keep keeps it"
    out.write(f"function /tmp: {sandbox.tmp_dir} ({kept})\n")
    wrapper = "off (--no-wrapper)" if not spec.use_wrapper else "AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-wrapper"
    out.write(f"layer: {spec.layer_dir or 'none'}; wrapper {wrapper}\n\n")


def print_invoke(number: int, total: int, result: InvokeResult, lines: list[str], out: TextIO) -> None:
    out.write(
        f"--- invoke {number}/{total}  {result.request_id}  {result.status}"
        f"{'  ' + result.error_type if result.error_type else ''}\n"
    )
    for line in lines:
        out.write(f"  {line}\n")
    out.write(f"  response ({result.status_code}): {result.text()}\n")
    for warning in result.warnings:
        out.write(f"  WARNING: {warning}\n")


def print_table(sandbox: Sandbox, out: TextIO, self_reports: Sequence[dict[str, Any]] = ()) -> None:
    if self_reports:
        print_self_table(self_reports, out)
        return
    header = ("REQUEST ID", "STATUS", "DURATION", "BILLED", "MAX MEM", "INIT", "COLD")
    rows: list[tuple[str, ...]] = [header]
    for item in sandbox.invocations:
        rows.append(
            (
                item.requestId,
                item.status,
                f"{item.durationMs:.2f} ms",
                f"{item.billedDurationMs} ms",
                f"{item.maxMemoryUsedMB} MB",
                "-" if item.initDurationMs is None else f"{item.initDurationMs:.2f} ms",
                "yes" if item.coldStart else "no",
            )
        )
    write_rows(rows, out)


def print_self_table(self_reports: Sequence[dict[str, Any]], out: TextIO) -> None:
    """The supervisor's own per-invocation records: what a function sees where the
    Telemetry API delivers nothing."""
    out.write("\nper-invocation records: self-reported by the wrapper's supervisor "
              "(source self: the Telemetry API delivered none)\n")
    rows: list[tuple[str, ...]] = [("REQUEST ID", "STATUS", "DURATION", "MAX MEM", "INIT", "COLD", "ERROR")]
    for line in self_reports:
        record = line.get("record") or {}
        metrics = record.get("metrics") or {}
        invocation = line.get("invocation") or {}
        init, duration = metrics.get("initDurationMs"), metrics.get("durationMs")
        memory = metrics.get("maxMemoryUsedMB")
        rows.append((
            str(record.get("requestId")),
            str(record.get("status")),
            "-" if duration is None else f"{duration:.3f} ms",  # none for a death seen at the next Init
            "-" if memory is None else f"{memory} MB",
            "-" if init is None else f"{init:.3f} ms",
            "yes" if invocation.get("coldStart") else "no",
            str(record.get("errorType") or "-"),
        ))
    write_rows(rows, out, leading_newline=False)


def write_rows(rows: Sequence[tuple[str, ...]], out: TextIO, leading_newline: bool = True) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    if leading_newline:
        out.write("\n")
    for row in rows:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def extension_report(sandbox: Sandbox, env: Mapping[str, str]) -> dict[str, Any]:
    telemetry_file, problem = telemetry_file_on_host(sandbox, env)
    records = 0
    if telemetry_file is not None and telemetry_file.is_file():
        with telemetry_file.open("rb") as stream:
            records = sum(1 for line in stream if line.strip())
    return {
        "registered": any(not item["external"] for item in sandbox.registered_extensions),
        "subscribed": any(item["api"] == "telemetry" for item in sandbox.subscriptions),
        "records": records,
        "file": telemetry_file,
        "problem": problem,
        "types": record_types(telemetry_file) if telemetry_file is not None else {},
        "selfReports": self_reports(telemetry_file) if telemetry_file is not None else [],
    }


def telemetry_file_on_host(sandbox: Sandbox, env: Mapping[str, str]) -> tuple[Path | None, str | None]:
    """Where the file exporter writes, read from the function's settings as the extension
    reads them, on the host; or None and why it writes no file."""
    function_env = dict(env)
    if not sandbox.namespace_mode:
        # Without a mount namespace the function's temporary directory is TMPDIR.
        function_env.setdefault("TMPDIR", str(sandbox.tmp_dir))
    with process_tmpdir(function_env.get("TMPDIR")):
        loaded = wrapper_settings.load(function_env)
    if not loaded.feature_enabled(FILE_EXPORTER):
        refused = "; ".join(
            item.describe() for item in loaded.problems if item.name == "LAMBDA_WRAPPER_FILE_PATH"
        )
        return None, f"{refused}: nothing is captured to a file"
    if "file" not in loaded.exporters:
        return None, "the file exporter is not among LAMBDA_WRAPPER_EXPORTERS"
    path = Path(str(loaded.file_path))
    if not sandbox.namespace_mode:
        return path, None
    # The function's /tmp is the sandbox's tmp_dir; nothing else inside is writable.
    if not path.is_relative_to("/tmp"):
        return None, f"{path} is outside the function's /tmp: nothing can be written there"
    return sandbox.tmp_dir / path.relative_to("/tmp"), None


@contextlib.contextmanager
def process_tmpdir(value: str | None) -> Iterator[None]:
    """TMPDIR as the function's process has it: the settings read it from ``os.environ``."""
    saved = os.environ.get("TMPDIR")
    try:
        if value is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = value
        yield
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved


def print_extension(report: dict[str, Any], sandbox: Sandbox, out: TextIO) -> None:
    where = f"in {report['file']}" if report["file"] is not None else f"({report['problem']})"
    out.write(
        f"\nextension: registered {'yes' if report['registered'] else 'no'}, "
        f"subscribed {'yes' if report['subscribed'] else 'no'}, "
        f"{report['records']} telemetry records {where}\n"
    )
    if report["types"]:
        # What it captured, at a glance: the file itself has every record.
        out.write("captured: " + ", ".join(f"{kind} x{n}" for kind, n in report["types"].items()) + "\n")
    for warning in sandbox.warnings:
        out.write(f"WARNING: {warning}\n")


def print_kept(sandbox: Sandbox, report: dict[str, Any], keep_tmp: bool, out: TextIO) -> None:
    if not keep_tmp:
        out.write(f"function /tmp {sandbox.tmp_dir} removed (--keep or --tmp DIR keeps it)\n")
        return
    out.write(f"function /tmp kept in {sandbox.tmp_dir}\n")
    file = report["file"]
    if file is not None and file.is_file():
        out.write(f"captured telemetry: {file}\n")


def self_reports(path: Path) -> list[dict[str, Any]]:
    """The file's ``platform.report`` lines the supervisor made (``source: self``)."""
    found: list[dict[str, Any]] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict) or item.get("type") != "platform.report":
            continue
        record = item.get("record")
        if isinstance(record, dict) and record.get("source") == "self":
            found.append(item)
    return found


def record_types(path: Path) -> dict[str, int]:
    """How many records of each ``type`` the file holds."""
    counts: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return counts
    for line in lines:
        try:
            kind = str(json.loads(line).get("type"))
        except (ValueError, AttributeError):
            continue
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def json_document(
    sandbox: Sandbox, spec: FunctionSpec, report: dict[str, Any], keep_tmp: bool
) -> dict[str, Any]:
    keys = (
        "requestId",
        "status",
        "durationMs",
        "billedDurationMs",
        "maxMemoryUsedMB",
        "initDurationMs",
        "coldStart",
        "response",
    )
    return {
        "invocations": [{key: item.to_json()[key] for key in keys} for item in sandbox.invocations],
        "runtime": f"python{spec.python_version or host_python_version()}",
        "extension": {key: report[key] for key in ("registered", "subscribed", "records")},
        "telemetrySource": "self" if report["selfReports"] else "platform",
        "selfReports": [item.get("record") for item in report["selfReports"]],
        "captured": report["types"],
        # Paths only while they exist: a fresh /tmp is removed unless kept.
        "telemetryFile": str(report["file"]) if keep_tmp and report["file"] is not None else None,
        "telemetryFileProblem": report["problem"],
        "functionTmp": str(sandbox.tmp_dir) if keep_tmp else None,
        "resources": sandbox.resource_limits,
        "warnings": list(sandbox.warnings),
    }
