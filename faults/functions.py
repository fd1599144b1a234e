"""The functions the scenarios run, written into one task root per suite run.

Every module imports ``faults_audit`` first: an audit hook that reports any write
outside ``/tmp`` (and ``/dev``, ``/proc``) as one ``FAULTS-WRITE-OUTSIDE-TMP`` line,
so the read-only check covers what the wrapper does after the handler is imported,
not only what the read-only mounts happen to refuse.

Handlers never print or return the event: the event carries a canary that must not
appear anywhere (event payloads are never logged by default).
"""

from __future__ import annotations

from pathlib import Path

MARK = "FAULTS-MARK"
FILL = "FAULTS-FILL"
WRITE_VIOLATION = "FAULTS-WRITE-OUTSIDE-TMP"

AUDIT = (
    '''
"""Report writes outside /tmp from this process (read-only check of the fault suite)."""
import os
import sys

_ALLOWED = ("/tmp", "/dev", "/proc")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
                "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "os.chmod": (0,),
                "os.chown": (0,), "os.utime": (0,), "os.mknod": (0,), "os.mkfifo": (0,)}
_seen = set()


def _outside(path):
    if path is None or isinstance(path, int):
        return None
    try:
        text = os.path.abspath(os.fsdecode(os.fspath(path)))
    except (TypeError, ValueError):
        return None
    if any(text == top or text.startswith(top + "/") for top in _ALLOWED):
        return None
    return text


def _hook(event, args):
    try:
        paths = ()
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
            paths = (path,) if writing else ()
        elif event in _PATH_EVENTS:
            paths = tuple(args[i] for i in _PATH_EVENTS[event] if i < len(args))
        for path in paths:
            text = _outside(path)
            if text is not None and (event, text) not in _seen:
                _seen.add((event, text))
                sys.__stderr__.write("'''
    + WRITE_VIOLATION
    + """ %s %s\\n" % (event, text))
                sys.__stderr__.flush()
    except Exception:
        pass  # the hook must never change what the function does


sys.addaudithook(_hook)
"""
)

APP = (
    '''
import faults_audit  # noqa: F401  (first: see its docstring)
import ctypes
import errno
import logging
import os
import sys
import threading
import time

logger = logging.getLogger("faults")


def _stats():
    found = {"pid": os.getpid(), "fds": len(os.listdir("/proc/self/fd"))}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                found[key] = int(value.split()[0])
    return found


def _before_death():
    # Let the platform hand the lines printed so far to the listener (batches every 100 ms).
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.3)


def _recurse(depth):
    return _recurse(depth + 1) + 1


def _kill_extension_threads():
    # SystemExit raised asynchronously in every thread of ours, again and again until
    # the thread is gone or 1.5 s have passed (the listener wakes at least once a
    # second): a thread that catches the first one is hit again inside its handler. A
    # thread blocked outside Python (the event loop waiting on /event/next) only sees
    # the last one, when it next runs Python code, after this returns.
    ours = [t for t in threading.enumerate() if t.name.startswith("lambda-wrapper-")]
    until = time.monotonic() + 1.5
    while time.monotonic() < until and any(t.is_alive() for t in ours):
        for thread in ours:
            if thread.is_alive():
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
        time.sleep(0.002)
    dead = sorted(t.name for t in ours if not t.is_alive())
    alive = sorted(t.name for t in ours if t.is_alive())
    print("threads hit: %s; dead: %s; alive: %s" % (
        ",".join(sorted(t.name for t in ours)), ",".join(dead), ",".join(alive)), flush=True)


def _oom():
    _before_death()
    chunks = []
    for _ in range(24):  # 384 MB, three times the 128 MB the function has
        chunks.append(b"\\x01" * (16 << 20))  # written, so it is resident
    return {"ok": True, "allocatedMb": 16 * len(chunks)}


def _probe_read_only():
    outcome = {}
    for directory in ("/var/task", "/opt"):
        try:
            with open(os.path.join(directory, "faults-probe"), "w") as handle:
                handle.write("x")
            outcome[directory] = "written"
        except OSError as error:
            outcome[directory] = errno.errorcode.get(error.errno, str(error.errno))
    return outcome


def _wait_for(path, limit_s):
    until = time.monotonic() + limit_s
    while not os.path.exists(path) and time.monotonic() < until:
        time.sleep(0.01)


def handler(event, context):
    mark = event.get("mark")
    if mark:
        print("'''
    + MARK
    + ''' %s" % mark, flush=True)
    for index in range(int(event.get("lines", 0))):
        print("'''
    + FILL
    + """ %s-%d %s" % (mark, index, "x" * 160))
    if event.get("log"):
        logger.warning("soak log line %s", mark)
    fault = event.get("fault")
    if fault == "exception":
        raise ValueError("faults: deliberate exception")
    if fault == "sys_exit":
        _before_death()
        sys.exit(3)
    if fault == "os_exit":
        _before_death()
        os._exit(7)
    if fault == "segfault":
        _before_death()
        ctypes.string_at(0)
    if fault == "recursion":
        return _recurse(0)
    if fault == "timeout":
        time.sleep(60)
    if fault == "oom":
        return _oom()
    if fault == "unserializable":
        return {"items": {1, 2, 3}}
    if fault == "kill_extension_thread":
        _kill_extension_threads()
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("wait_for"):
        _wait_for(event["wait_for"], float(event.get("wait_limit_s", 30)))
    if event.get("doctor") is not None:
        from lambda_wrapper import doctor

        doctor.main(list(event["doctor"]))
    result = {"ok": True, "mark": mark}
    if event.get("probe_read_only"):
        result["readOnly"] = _probe_read_only()
    if event.get("credentials_prefix"):
        # Booleans only: the values are canaries and must not leave the process.
        result["credentialsSeen"] = os.environ.get("AWS_ACCESS_KEY_ID", "").startswith(
            event["credentials_prefix"])
    if event.get("stats"):
        result.update(_stats())
    return result
"""
)

INIT_ERROR = (
    '''
import faults_audit  # noqa: F401
import os
import sys
import time

# Init fails the first two times (a dependency that is down), then works.
_COUNTER = "/tmp/faults-init-count"
try:
    with open(_COUNTER) as handle:
        count = int(handle.read() or 0)
except OSError:
    count = 0
with open(_COUNTER, "w") as handle:
    handle.write(str(count + 1))
print("'''
    + MARK
    + """ init-%d" % count, flush=True)
if count < 2:
    time.sleep(0.3)  # let the platform deliver the marker first
    raise RuntimeError("faults: deliberate init error")


def handler(event, context):
    return {"ok": True, "inits": count + 1}
"""
)

INIT_SLOW = (
    '''
import faults_audit  # noqa: F401
import os
import time

print("'''
    + MARK
    + """ slow-init-%d" % os.getpid(), flush=True)
time.sleep(float(os.environ.get("FAULTS_INIT_SLEEP_S", "11")))


def handler(event, context):
    return {"ok": True}
"""
)

SOURCES = {"faults_audit.py": AUDIT, "app.py": APP, "init_error.py": INIT_ERROR, "init_slow.py": INIT_SLOW}


def write_task_root(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in SOURCES.items():
        (directory / name).write_text(source.lstrip("\n"))
    return directory
