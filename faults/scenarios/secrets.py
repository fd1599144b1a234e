"""Secrets: canaries in the credentials, both header settings and an event field.

Every session of the run had the canaries set (and every event carried one), so
this family, which runs last, looks for them in everything the run produced:
function and extension output, ``doctor`` output (on the host and inside the
function), every file under the functions' ``/tmp`` (spool segments, the file
exporter's output), every request body the endpoints received, and the report's
own figures. Header canaries are expected in request *headers*: seeing them there
proves the secrets were live.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..context import Context
from ..harness import caller_view, session
from ..model import Result
from ..servers import Endpoint


def run(ctx: Context) -> list[Result]:
    result = Result("secrets: canaries never appear in any output", "secrets")
    started = time.monotonic()
    canaries = ctx.canaries.values()
    endpoint = Endpoint("secrets", canaries)
    env = {
        "LAMBDA_WRAPPER_EXPORTERS": "emf,file,otlp,http",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.url(),
        "LAMBDA_WRAPPER_HTTP_ENDPOINT": endpoint.url(path="/http"),
        "LAMBDA_WRAPPER_LOGS": "structlog",
        "LAMBDA_WRAPPER_PROCESS_METRICS": "true",
    }
    try:
        with session(ctx, result.scenario, env=env) as s:
            seen = s.invoke(
                {"mark": "secrets.0", "credentials_prefix": "AKIAFAULTSCANARY", "log": True}
            ).json()
            s.invoke({"mark": "secrets.1", "doctor": []})
            s.invoke({"mark": "secrets.2", "doctor": ["--json"]})
            s.invoke({"mark": "secrets.3", "fault": "exception"})
            views = [caller_view(r) for r in s.results]
            peak = s.peak_mb
    finally:
        endpoint.close()
        ctx.absorb(endpoint)
    doctor_ok = _host_doctor(ctx, env)
    hits, scanned, files, size = _scan(ctx, canaries)
    function_doctor = "\n".join(s.sandbox.function_output)
    result.saw = (
        f"{views[0][0]} {views[0][1]}; credentials visible to the function: {seen.get('credentialsSeen')}"
    )
    result.check("the credential canaries were live in the function", seen.get("credentialsSeen") is True)
    result.check("doctor ran inside the function", "OTEL_EXPORTER_OTLP_HEADERS" in function_doctor)
    result.check("doctor ran on the host (python -m, console script, --json)", doctor_ok)
    live = {"OTEL_EXPORTER_OTLP_HEADERS", "LAMBDA_WRAPPER_HTTP_HEADERS"}
    result.check("both header canaries reached an endpoint as headers", live <= ctx.header_canaries_seen)
    result.check("no canary in any output, file or request body", not hits)
    result.delivered = (
        f"scanned {scanned} outputs, {files} files ({size / 1e6:.1f} MB), {ctx.bodies_scanned} request bodies"
    )
    result.lost = f"{len(hits)} canary hits"
    result.peak_mb = peak
    result.notes.extend(hits[:20])
    result.seconds = time.monotonic() - started
    return [result]


def _host_doctor(ctx: Context, env: dict[str, str]) -> bool:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_WRAPPER_", "OTEL_", "AWS_"))}
    full_env = {**base, **ctx.canaries.env(), **env}
    script = Path(sys.executable).with_name("lambda-wrapper")
    commands = [
        [sys.executable, "-m", "lambda_wrapper.doctor"],
        [sys.executable, "-m", "lambda_wrapper.doctor", "--json"],
        [str(script), "doctor"]
        if script.exists()
        else [sys.executable, "-m", "lambda_wrapper_dev.cli", "doctor"],
    ]
    ok = True
    for command in commands:
        done = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=60)
        ctx.add_artefact(f"host doctor {' '.join(command[1:])}", done.stdout + done.stderr)
        # Exit status 1 means "a setting is invalid", still a complete report.
        ok = ok and done.returncode in (0, 1) and "OTEL_EXPORTER_OTLP_HEADERS" in done.stdout
    return ok


def _scan(ctx: Context, canaries: dict[str, str]) -> tuple[list[str], int, int, int]:
    hits: list[str] = []
    for source, text in ctx.artefacts:
        hits.extend(f"{name} in {source}" for name, value in canaries.items() if value in text)
    for result in ctx.results:
        text = repr(vars(result))
        hits.extend(
            f"{name} in the report row {result.scenario!r}"
            for name, value in canaries.items()
            if value in text
        )
    files = size = 0
    needles = {name: value.encode() for name, value in canaries.items()}
    for directory, _, names in os.walk(ctx.work_dir / "tmp"):
        for file_name in names:
            path = Path(directory, file_name)
            try:
                data = path.read_bytes()
            except OSError:
                continue
            files += 1
            size += len(data)
            hits.extend(f"{name} in {path}" for name, needle in needles.items() if needle in data)
    hits.extend(f"{name} in a body sent to {receiver} {path}" for receiver, path, name in ctx.receiver_hits)
    return hits, len(ctx.artefacts), files, size
