"""Small stdlib-only programs that exercise the platform, for tests and conformance runs.

Each probe records what it saw as JSON lines in the function's ``/tmp`` (so the same
probe works on the sandbox and on the RIE) and is steered by environment
variables, so one file serves many scenarios:

- ``write_probe_function(dir)``: ``app.py`` with ``app.handler``. The event selects
  actions (``echo``, ``sleep``, ``exit``, ``raise``, ``lines``, ``write_task_root``,
  ``start_counter``/``read_counter``, ``environment``). With ``PROBE_INTERNAL=1`` it
  registers an internal extension at import time (name ``PROBE_INTERNAL_NAME``,
  events ``PROBE_INTERNAL_EVENTS``), optionally subscribes it to telemetry
  (``PROBE_INTERNAL_TELEMETRY``: a subscription body whose URI may contain
  ``{port}``) and loops on ``/extension/event/next`` in a thread. With
  ``PROBE_SIGTERM=1`` a thread woken through ``signal.set_wakeup_fd`` records
  SIGTERM, sleeps ``PROBE_SIGTERM_SLEEP_S`` and records that it finished.
  ``PROBE_IMPORT_SLEEP_S`` makes the import (function Init) slow.
- ``write_probe_extension(dir, name)``: an external extension. Its file name is its
  extension name; env ``PROBE_EXT_EVENTS``, ``PROBE_EXT_TELEMETRY`` (as above),
  ``PROBE_EXT_API`` (``telemetry`` or ``logs``), ``PROBE_EXT_NEXT_DELAY_S`` (work
  after each INVOKE), ``PROBE_LISTENER_DELAY_S`` (a slow telemetry listener),
  ``PROBE_EXT_CALLS`` / ``PROBE_EXT_CALLS_AFTER_INVOKE`` (JSON list of
  ``[method, path, body, headers]`` calls made before the first ``next`` / on the
  first INVOKE; ``{id}`` in a header is the extension id).
- ``write_probe_runtime(dir)``: a bare runtime loop that records the ``/next``
  headers and echoes the event; run it with ``FunctionSpec.bootstrap_argv``.

Records go to ``/tmp/probe-<who>.jsonl`` (``TMPDIR`` in host mode).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

_COMMON = r'''
import json, os, sys, tempfile, threading, time, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
_record_lock = threading.Lock()


def record(who, kind, **fields):
    path = os.path.join(tempfile.gettempdir(), f"probe-{who}.jsonl")
    with _record_lock, open(path, "a") as stream:
        stream.write(json.dumps({"at": time.time(), "kind": kind, **fields}) + "\n")


def call(method, path, body=None, headers=None):
    request = urllib.request.Request(f"http://{API}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def start_listener(who, delay_s):
    class Listener(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _receive(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record(who, "telemetry", method=self.command, path=self.path,
                   sequence_id=self.headers.get("Sequence-Id"), batch=json.loads(body))
            if delay_s:
                time.sleep(delay_s)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _receive
        do_PUT = _receive

    server = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def subscribe(who, extension_id, template, api, delay_s):
    port = start_listener(who, delay_s)
    body = template.replace("{port}", str(port)).encode()
    path = "/2022-07-01/telemetry" if api == "telemetry" else "/2020-08-15/logs"
    status, headers, answer = call("PUT", path, body, {"Lambda-Extension-Identifier": extension_id,
                                                       "Content-Type": "application/json"})
    record(who, "subscribe", status=status, body=answer, headers=headers)


def register(who, name, events):
    body = json.dumps({"events": events}).encode()
    headers = {"Lambda-Extension-Name": name, "Lambda-Extension-Accept-Feature": "accountId"}
    status, headers, answer = call("POST", "/2020-01-01/extension/register", body, headers)
    record(who, "register", status=status, headers=headers, body=answer)
    return headers.get("Lambda-Extension-Identifier")


def run_calls(who, extension_id, variable):
    """Make the HTTP calls listed in env ``variable`` ([method, path, body, headers] each)."""
    for method, path, body, headers in json.loads(os.environ.get(variable) or "[]"):
        headers = {key: value.replace("{id}", extension_id or "") for key, value in (headers or {}).items()}
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
        status, answer_headers, answer = call(method, path, data, headers)
        record(who, "call", path=path, status=status, headers=answer_headers, body=answer)


def next_event(who, extension_id):
    status, headers, body = call("GET", "/2020-01-01/extension/event/next", None,
                                 {"Lambda-Extension-Identifier": extension_id})
    record(who, "event", status=status, headers=headers, body=body)
    return json.loads(body) if status == 200 else None
'''

_FUNCTION = (
    _COMMON
    + r"""
import errno, signal

_counter = {"value": 0}


def _internal_extension():
    who = "internal"
    name = os.environ.get("PROBE_INTERNAL_NAME", "probe-internal")
    events = [e for e in os.environ.get("PROBE_INTERNAL_EVENTS", "INVOKE").split(",") if e]
    extension_id = register(who, name, events)
    template = os.environ.get("PROBE_INTERNAL_TELEMETRY")
    if template and extension_id:
        subscribe(who, extension_id, template, os.environ.get("PROBE_INTERNAL_API", "telemetry"),
                  float(os.environ.get("PROBE_LISTENER_DELAY_S", "0")))

    def loop():
        delay = float(os.environ.get("PROBE_INTERNAL_NEXT_DELAY_S", "0"))
        while True:
            event = next_event(who, extension_id)
            if event is None:
                return
            if delay:
                time.sleep(delay)

    if extension_id:
        threading.Thread(target=loop, daemon=True).start()


def _watch_sigterm(read_fd):
    # Python runs signal handlers only on the main thread, which awslambdaric may keep
    # blocked; CPython's C-level handler writes to the wakeup fd from any thread.
    os.read(read_fd, 1)
    record("function", "sigterm")
    time.sleep(float(os.environ.get("PROBE_SIGTERM_SLEEP_S", "0")))
    record("function", "sigterm-done")


time.sleep(float(os.environ.get("PROBE_IMPORT_SLEEP_S", "0")))
if os.environ.get("PROBE_INTERNAL") == "1":
    _internal_extension()
if os.environ.get("PROBE_SIGTERM") == "1":
    _read_end, _write_end = os.pipe()
    os.set_blocking(_write_end, False)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.set_wakeup_fd(_write_end)
    threading.Thread(target=_watch_sigterm, args=(_read_end,), daemon=True).start()
record("function", "init", pid=os.getpid())


def _count():
    while True:
        _counter["value"] += 1
        time.sleep(0.01)


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    result = {"echo": event.get("echo"), "requestId": context.aws_request_id}
    for index in range(int(event.get("lines", 0))):
        print(f"line {index}")
    if "print" in event:
        print(event["print"])
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if "write_task_root" in event:
        try:
            with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], event["write_task_root"]), "w") as stream:
                stream.write("written")
            result["write"] = "ok"
        except OSError as error:
            result["write"] = errno.errorcode.get(error.errno, str(error.errno))
    if event.get("start_counter"):
        threading.Thread(target=_count, daemon=True).start()
    if event.get("start_counter") or event.get("read_counter"):
        result["counter"] = _counter["value"]
    if event.get("environment"):
        result["environment"] = dict(os.environ)
        result["cwd"] = os.getcwd()
        result["sys_path"] = sys.path
        result["remaining_ms"] = context.get_remaining_time_in_millis()
        result["function_arn"] = context.invoked_function_arn
    if "call" in event:
        method, path, body, headers = event["call"]
        data = None if body is None else json.dumps(body).encode()
        result["call"] = dict(zip(("status", "headers", "body"), call(method, path, data, headers or {})))
    if "raise" in event:
        raise ValueError(event["raise"])
    if "exit" in event:
        sys.exit(int(event["exit"]))
    return result
"""
)

_EXTENSION = (
    "#!/usr/bin/env python3\n"
    + _COMMON
    + r"""
import signal

WHO = "ext-" + os.path.basename(sys.argv[0])
signal.signal(signal.SIGTERM, lambda *_: record(WHO, "sigterm"))
record(WHO, "start", cwd=os.getcwd(), environment=dict(os.environ), pgid=os.getpgid(0), pid=os.getpid())
events = [e for e in os.environ.get("PROBE_EXT_EVENTS", "INVOKE,SHUTDOWN").split(",") if e]
extension_id = register(WHO, os.path.basename(sys.argv[0]), events)
template = os.environ.get("PROBE_EXT_TELEMETRY")
if template and extension_id:
    subscribe(WHO, extension_id, template, os.environ.get("PROBE_EXT_API", "telemetry"),
              float(os.environ.get("PROBE_LISTENER_DELAY_S", "0")))
run_calls(WHO, extension_id, "PROBE_EXT_CALLS")
delay = float(os.environ.get("PROBE_EXT_NEXT_DELAY_S", "0"))
invokes = 0
while extension_id:
    event = next_event(WHO, extension_id)
    if event is None:
        break
    invokes += 1
    if invokes == 1:
        run_calls(WHO, extension_id, "PROBE_EXT_CALLS_AFTER_INVOKE")
    if event.get("eventType") == "SHUTDOWN":
        time.sleep(float(os.environ.get("PROBE_EXT_SHUTDOWN_WORK_S", "0.05")))
        record(WHO, "exit")
        break
    if delay:
        time.sleep(delay)
"""
)

_RUNTIME = (
    _COMMON
    + r"""
while True:
    request = urllib.request.Request(f"http://{API}/2018-06-01/runtime/invocation/next")
    with urllib.request.urlopen(request) as response:
        headers, body = dict(response.headers), response.read()
    record("runtime", "next", status=response.status, headers=headers, body=body.decode())
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    path = f"/2018-06-01/runtime/invocation/{request_id}/response"
    status, answer_headers, answer = call("POST", path, body)
    record("runtime", "response", status=status, headers=answer_headers, body=answer)
"""
)


def _write(path: Path, source: str, executable: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def write_probe_function(task_root: Path) -> Path:
    return _write(task_root / "app.py", _FUNCTION, executable=False)


def write_probe_extension(extensions_dir: Path, name: str, interpreter: str) -> Path:
    """An external extension; ``interpreter`` is the Python it runs with (the runtime image's)."""
    source = _EXTENSION.replace("#!/usr/bin/env python3", f"#!{interpreter}", 1)
    return _write(extensions_dir / name, source, executable=True)


def write_probe_runtime(task_root: Path) -> Path:
    return _write(task_root / "probe_runtime.py", _RUNTIME, executable=False)


def read_records(tmp_dir: Path, who: str) -> list[dict]:
    path = tmp_dir / f"probe-{who}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def telemetry_subscription(
    types: list[str],
    *,
    schema: str = "2022-12-13",
    max_items: int = 1000,
    max_bytes: int = 262144,
    timeout_ms: int = 25,
) -> str:
    """A subscription body template for the probes (``{port}`` is filled in by them)."""
    return json.dumps(
        {
            "schemaVersion": schema,
            "types": types,
            "buffering": {"maxItems": max_items, "maxBytes": max_bytes, "timeoutMs": timeout_ms},
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:{port}"},
        }
    )


__all__ = [
    "read_records",
    "telemetry_subscription",
    "write_probe_extension",
    "write_probe_function",
    "write_probe_runtime",
]
