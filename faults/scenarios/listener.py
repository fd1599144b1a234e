"""Hostile input to the telemetry listener, which lives inside the function process.

The process is frozen between invocations (as on Lambda), so each attack runs while
an invocation is in progress: the handler waits for a release file in ``/tmp``. The
listener must keep serving (a well-behaved POST during and after the attack is
answered 200 and its record exported), the platform must lose nothing
(``platform.logsDropped``), and memory must stay bounded.

The decoder itself is fuzzed in-process with hypothesis and, where it installs,
atheris (in a child process: atheris exits when it is done).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .. import attacks
from ..context import Context
from ..harness import (
    Session,
    caller_view,
    exported_file_records,
    markers,
    process_sample,
    session,
    spool_root,
    tree_bytes,
)
from ..model import Result
from ..telemetry_inputs import SEED_BATCHES, telemetry_bodies, write_corpus

RSS_BOUND_KB = 8 * 1024  # growth of the function's RSS that one attack may cause
SPOOL_BOUND = 64 * 1024  # the oversized body must not land in the spool
RELEASE = "faults-release"
LIBFUZZER_DONE = re.compile(r"^Done (\d+) runs in ", re.MULTILINE)  # libFuzzer's last line
Attack = Callable[[int, str], attacks.Observed]


def run(ctx: Context) -> list[Result]:
    live: list[tuple[str, Attack]] = [
        ("listener: non-HTTP bytes", attacks.non_http),
        ("listener: malformed JSON bodies", attacks.malformed_json),
        ("listener: body over the size cap", attacks.oversized),
        ("listener: headers trickled a byte at a time", attacks.trickled_headers),
        (
            f"listener: {ctx.form.flood_connections} concurrent connections",
            lambda port, tag: attacks.flood(port, tag, ctx.form.flood_connections),
        ),
        (
            f"listener: {ctx.form.listener_live_examples} hypothesis-generated bodies",
            lambda port, tag: _hypothesis_bodies(port, tag, ctx.form.listener_live_examples),
        ),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda item: _live(ctx, *item), live))
    return [*results, _decoder_fuzz(ctx)]


def _live(ctx: Context, title: str, attack: Attack) -> Result:
    result = Result(title, "listener")
    started = time.monotonic()
    tag = "".join(c for c in title.split(":")[1] if c.isalnum())[:24]
    with session(ctx, title, env={"LAMBDA_WRAPPER_EXPORTERS": "file"}, timeout_s=60) as s:
        warm = s.invoke({"mark": f"{tag}.warm", "stats": True}).json()
        pid = int(warm["pid"])
        port = _listener_port(pid)
        before = process_sample(pid)
        spool_before = tree_bytes(spool_root(s.tmp_dir))
        observed, during = _during_invocation(s, tag, lambda: attack(port, tag))
        spool_after = tree_bytes(spool_root(s.tmp_dir))
        after_doc = s.invoke({"mark": f"{tag}.after", "stats": True}).json()
        after = process_sample(pid)
        views = [caller_view(r) for r in s.results]
        cold_again = any(summary.coldStart for summary in s.sandbox.invocations[1:])
        dropped = [e for e in s.sandbox.telemetry_events if e["type"] == "platform.logsDropped"]
        peak = s.peak_mb
    records = exported_file_records(s.tmp_dir)
    exported = markers("\n".join(str(r.get("record")) for r in records))
    platform_exported = sum(str(r.get("type", "")).startswith("platform.") for r in records)
    invocation_marks = {f"{tag}.warm", f"{tag}.during", f"{tag}.after"}
    probe_marks = set(observed.probe_marks)
    expected = invocation_marks | probe_marks
    growth = after["VmRSS"] - before["VmRSS"]
    ok_views = all(v[:3] == (200, "success", None) for v in views)
    result.saw = f"200 success x{len(views)}" if ok_views else "see notes"
    result.delivered = f"{len(expected & exported)}/{len(expected)} records incl. probes"
    lost_records = sum(int(e["record"].get("droppedRecords", 0)) for e in dropped)
    result.lost = f"{len(expected - exported)} (platform dropped {lost_records})"
    result.peak_mb = peak
    result.check("every invocation succeeded, none re-initialised", ok_views and not cold_again)
    result.check(f"the attack's own expectations: {observed.summary}", observed.ok)
    result.check("the attacked invocation answered", during is not None)
    result.check(
        f"the attack sent probes, each with its own marker ({sorted(probe_marks)})",
        len(probe_marks) == len(observed.probe_marks) > 0 and not probe_marks & invocation_marks,
    )
    result.check(f"every probe marker was exported ({len(probe_marks & exported)}/{len(probe_marks)})",
                 probe_marks <= exported)
    result.check("every invocation's marker was exported", invocation_marks <= exported)
    if "concurrent connections" in title:
        # At 128 MB the function has 7 % of a CPU: closing a thousand hostile sockets
        # can delay the platform's own POST past its next batch, which the platform then
        # drops and counts (platform.logsDropped reaches us and the EMF LogsDropped
        # metric). Counted, not silent; the function's own records above must all arrive.
        result.notes.append(f"platform batches dropped and counted during the flood: {len(dropped)}")
    else:
        result.check("the platform dropped nothing (no platform.logsDropped)", not dropped)
    result.check(f"RSS grew {growth} kB (bound {RSS_BOUND_KB} kB)", growth <= RSS_BOUND_KB)
    if attack is attacks.oversized:  # a refused body must not be stored; accepted ones are
        growth_b = spool_after - spool_before
        result.check(f"the spool grew {growth_b} B (bound {SPOOL_BOUND} B)", growth_b <= SPOOL_BOUND)
    result.check("the process kept its pid", int(after_doc.get("pid", pid)) == pid)
    result.notes.append(observed.summary)
    result.notes.extend(observed.notes)
    result.notes.append(
        f"fds {before['fds']} -> {after['fds']}, threads {before['Threads']} -> {after['Threads']}"
    )
    if expected - exported:
        result.notes.append(f"not exported: {sorted(expected - exported)}")
    result.notes.extend(f"platform.logsDropped: {e['record']}" for e in dropped[:3])
    result.notes.append(f"platform events exported: {platform_exported}")
    result.seconds = time.monotonic() - started
    return result


def _during_invocation(
    s: Session, tag: str, attack: Callable[[], attacks.Observed]
) -> tuple[attacks.Observed, object]:
    """Run ``attack`` while an invocation holds the function thawed."""
    release = s.tmp_dir / RELEASE
    release.unlink(missing_ok=True)
    answer: list[object] = []
    mark = f"{tag}.during"
    invoker = threading.Thread(
        target=lambda: answer.append(
            s.invoke({"mark": mark, "wait_for": f"/tmp/{RELEASE}", "wait_limit_s": 45})
        )
    )
    invoker.start()
    line = f"FAULTS-MARK {mark}"
    until = time.monotonic() + 20
    while line not in s.sandbox.function_output and time.monotonic() < until:
        time.sleep(0.01)
    try:
        observed = attack()
    finally:
        release.touch()
        invoker.join(60)
    return observed, (answer[0] if answer else None)


def _listener_port(pid: int) -> int:
    listening = [
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    ]
    if len(listening) != 1:
        raise RuntimeError(f"expected one listening socket in the function, found {listening}")
    return listening[0]


def _hypothesis_bodies(port: int, tag: str, examples: int) -> attacks.Observed:
    statuses: list[int | None] = []
    bodies = telemetry_bodies()

    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def send(body: bytes) -> None:
        statuses.append(attacks.post(port, body)[0])

    send()
    status, took = attacks.probe(port, f"{tag}.probe")
    bad = [s for s in statuses if s not in (200,)]
    ok = not bad and status == 200
    return attacks.Observed(
        ok,
        f"{len(statuses)} generated bodies, all acknowledged: {not bad}",
        [f"non-200 answers: {bad[:10]}", f"probe after: {status} in {took * 1000:.0f} ms"],
        [f"{tag}.probe"],
    )


def _decoder_fuzz(ctx: Context) -> Result:
    from lambda_wrapper.log_lines import decode_batch, is_own_diagnostic
    from lambda_wrapper.malformed import UnreadableBatch
    from lambda_wrapper.telemetry import decode_platform_events, parse_batch

    # The row names atheris only where it runs: without it, this is a hypothesis row.
    with_atheris = importlib.util.find_spec("atheris") is not None
    title = "telemetry decoder fuzzed (hypothesis" + (", atheris)" if with_atheris else ")")
    result = Result(title, "listener")
    started = time.monotonic()
    failures: list[str] = []

    @settings(
        max_examples=ctx.form.decoder_examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(telemetry_bodies() | st.text(max_size=512).map(str.encode))
    def decode(body: bytes) -> None:
        try:
            batch = decode_batch(body)
            decode_platform_events(parse_batch(body))  # the pipeline's decoder with the defaults
        except UnreadableBatch:
            return
        except Exception as error:  # anything else would reach the pipeline
            failures.append(f"{type(error).__name__} on {body[:60]!r}")
            return
        for event in batch.events:
            event.to_output()
            is_own_diagnostic(event, {"LambdaWrapper"})

    decode()
    result.check(f"hypothesis: {ctx.form.decoder_examples} inputs, only UnreadableBatch raised", not failures)
    result.notes.extend(failures[:5])
    if with_atheris:
        _atheris(result, ctx.form.atheris_runs, ctx.work_dir / "atheris")
    else:
        result.notes.append("hypothesis only: no libFuzzer run (atheris does not install here)")
    result.saw = "n/a (in-process)"
    result.delivered = "n/a"
    result.lost = "n/a"
    result.seconds = time.monotonic() - started
    return result


def _atheris(result: Result, runs: int, work_dir: Path) -> None:
    corpus = write_corpus(work_dir / "corpus")
    # libFuzzer writes a crashing input to the current directory unless told otherwise:
    # that would be the repository.
    command = [
        sys.executable,
        "-m",
        "faults.fuzz_decode",
        str(corpus),
        f"-runs={runs}",
        "-max_total_time=120",
        f"-artifact_prefix={work_dir}/",
    ]
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=root)
    crashed = done.returncode != 0
    result.check(f"atheris found no crash (exit {done.returncode})", not crashed)
    if crashed:
        result.notes.append(f"atheris crashed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return
    # The count libFuzzer says it ran, not the one asked for (it stops early at
    # -max_total_time, or at once when the target cannot start).
    measured = [int(count) for count in LIBFUZZER_DONE.findall(done.stderr)]
    ran = measured[-1] if measured else 0
    result.check(f"atheris reported the runs it made ({ran} of {runs} asked for)", ran > 0)
    coverage = [line for line in done.stderr.splitlines() if "DONE " in line and "cov:" in line]
    summary = coverage[-1].split("DONE", 1)[1].split("lim:")[0].strip() if coverage else ""
    seeds = len(SEED_BATCHES)
    result.notes.append(
        f"atheris: {ran} runs (of {runs} asked for) from {seeds} seeds, decoder and exporters, "
        f"no crash ({summary})"
    )
    if not measured:
        result.notes.append(f"libFuzzer output without a 'Done N runs' line:\n{done.stderr[-2000:]}")
