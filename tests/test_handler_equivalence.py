"""A function's caller sees the same results with and without our wrapper, on both platforms.

Every test here runs on each Lambda Python found on the machine (``runtime_python``),
each on its own runtime image, so awslambdaric runs in that version's real mode: the
host's Python with every sample function, the others with ``CORE_HANDLERS``, the ones
whose answers come from the interpreter (its exception and syntax-error texts, JSON
encoding, exit handling) rather than from awslambdaric's handler lookup.

For every sample function in ``tests/functions`` (healthy and broken) the reference
is the official RIE running the function *without* the wrapper. Each other
combination — RIE with the wrapper, sandbox without, sandbox with — must give the
invoking client the same HTTP status, ``errorType`` and ``errorMessage`` (request
ids masked), and for successes the same body, on two consecutive invokes (the
second one after an init error re-initialises and must fail the same way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from platforms import PLATFORMS, FunctionUnderTest, Invocation, Platform, skip_unless_rie_can_run
from runtime_pythons import host_first_then_core

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FUNCTION_NAME = "equivalence"
PAYLOAD = b'{"x": 1}'
INVOKES = 2
WRAPPER_FAIL_OPEN = "wrapper_fail_open"


@dataclass(frozen=True)
class Expected:
    status_code: int
    error_type: str | None = None
    # None: not pinned here (it is still compared with the reference).
    error_message: str | None = None


# What the reference (RIE, no wrapper, awslambdaric 4.2.2) returns. Init failures are
# 502 with awslambdaric's init error document; function errors are 200.
EXPECTED: dict[str, Expected] = {
    "healthy.handler": Expected(200),
    "logs.handler": Expected(200),
    "sub/mod.handler": Expected(200),
    "nope.handler": Expected(
        502, "Runtime.ImportModuleError", "Unable to import module 'nope': No module named 'nope'"
    ),
    "syntax_error.handler": Expected(502, "Runtime.UserCodeSyntaxError"),
    "import_error.handler": Expected(502, "RuntimeError", "import-time failure"),
    "healthy.missing": Expected(
        502, "Runtime.HandlerNotFound", "Handler 'missing' missing on module 'healthy'"
    ),
    "healthy": Expected(
        502,
        "Runtime.MalformedHandlerName",
        "Bad handler 'healthy': not enough values to unpack (expected 2, got 1)",
    ),
    "function_error.handler": Expected(200, "ValidationFailed", "bad input in <id>"),
    "exits.handler": Expected(
        502, "Runtime.ExitError", "RequestId: <id> Error: Runtime exited with error: exit status 3"
    ),
    "unserializable.handler": Expected(
        200, "Runtime.MarshalError", "Unable to marshal response: Object of type set is not JSON serializable"
    ),
}
CORE_HANDLERS = frozenset(
    {
        "healthy.handler",
        "nope.handler",
        "syntax_error.handler",
        "import_error.handler",
        "function_error.handler",
        "exits.handler",
        "unserializable.handler",
        "wrapper_state.handler",
    }
)
INIT_FAILURES = [handler for handler, expected in EXPECTED.items() if expected.status_code == 502]
COMBINATIONS = [("rie", True), ("sandbox", False), ("sandbox", True)]


@dataclass(frozen=True)
class CallerView:
    """What the invoking client can rely on; request ids masked."""

    status_code: int
    error_type: str | None
    error_message: str | None
    body: Any  # the JSON of a success; None for errors

    @classmethod
    def of(cls, invocation: Invocation) -> CallerView:
        try:
            document = invocation.json
        except ValueError:
            document = invocation.body.decode(errors="replace")
        if isinstance(document, dict) and "errorType" in document:
            return cls(
                invocation.status_code, document["errorType"], mask(document.get("errorMessage")), None
            )
        return cls(invocation.status_code, None, None, document)


@dataclass
class Run:
    views: list[CallerView]
    stack_traces: list[list[str] | None]
    output: str
    import_attempts: int | None


def mask(text: Any) -> Any:
    return UUID.sub("<id>", text) if isinstance(text, str) else text


_runs: dict[tuple[str, str, bool, str], Run] = {}


@pytest.fixture
def run_function(functions_task_root: Path, layer_dir: Path, runtime_python: str):
    """Run a handler on a platform (once per module and Python) and return what the caller saw."""

    def run(platform_name: str, wrapped: bool, handler: str) -> Run:
        if platform_name == "rie":
            skip_unless_rie_can_run()
        key = (runtime_python, platform_name, wrapped, handler)
        if key not in _runs:
            spec = FunctionUnderTest(
                task_root=functions_task_root,
                handler=handler,
                layer_dir=layer_dir if wrapped else None,
                use_wrapper=wrapped,
                function_name=FUNCTION_NAME,
                python_version=runtime_python,
            )
            _runs[key] = invoke_repeatedly(PLATFORMS[platform_name](), spec)
        return _runs[key]

    return run


def invoke_repeatedly(platform: Platform, spec: FunctionUnderTest) -> Run:
    with platform:
        platform.start(spec)
        invocations = [platform.invoke(PAYLOAD) for _ in range(INVOKES)]
        attempts_file = platform.tmp_dir / "import_error_attempts"
        attempts = int(attempts_file.read_text()) if attempts_file.exists() else None
        platform.stop()
        views = [CallerView.of(invocation) for invocation in invocations]
        return Run(views, [stack_trace(i) for i in invocations], platform.output(), attempts)


def stack_trace(invocation: Invocation) -> list[str] | None:
    try:
        document = invocation.json
    except ValueError:
        return None
    return document.get("stackTrace") if isinstance(document, dict) else None


@pytest.mark.parametrize(("runtime_python", "handler"), host_first_then_core(EXPECTED, CORE_HANDLERS))
def test_reference_is_what_we_expect(run_function, handler: str) -> None:
    """Pins the reference itself, so a change in the RIE or awslambdaric is noticed."""
    expected = EXPECTED[handler]
    for view in run_function("rie", False, handler).views:
        assert view.status_code == expected.status_code
        assert view.error_type == expected.error_type
        if expected.error_message is not None:
            assert view.error_message == expected.error_message


@pytest.mark.parametrize(("runtime_python", "handler"), host_first_then_core(EXPECTED, CORE_HANDLERS))
@pytest.mark.parametrize(
    ("platform_name", "wrapped"),
    [
        pytest.param(name, wrapped, id=f"{name}-{'wrapped' if wrapped else 'bare'}")
        for name, wrapped in COMBINATIONS
    ],
)
def test_caller_sees_the_reference_result(
    run_function, platform_name: str, wrapped: bool, handler: str
) -> None:
    reference = run_function("rie", False, handler)
    candidate = run_function(platform_name, wrapped, handler)
    assert candidate.views == reference.views, candidate.output[-3000:]


@pytest.mark.parametrize(
    ("runtime_python", "handler"),
    host_first_then_core(
        [h for h, e in EXPECTED.items() if e.error_type and h != "exits.handler"], CORE_HANDLERS
    ),
)
@pytest.mark.parametrize(
    ("platform_name", "wrapped"),
    [
        pytest.param(name, wrapped, id=f"{name}-{'wrapped' if wrapped else 'bare'}")
        for name, wrapped in COMBINATIONS
    ],
)
def test_stack_trace_keeps_every_frame_of_the_reference(
    run_function, platform_name: str, wrapped: bool, handler: str
) -> None:
    """The user's frames all reach the caller, in order, at the end of ``stackTrace``.

    The wrapper may add frames of its own above them (today: one per invocation error,
    more for init errors, which the caller does see).
    """
    reference = run_function("rie", False, handler)
    candidate = run_function(platform_name, wrapped, handler)
    for expected, observed in zip(reference.stack_traces, candidate.stack_traces, strict=True):
        assert expected is not None and observed is not None
        assert observed[len(observed) - len(expected) :] == expected


@pytest.mark.parametrize(
    ("platform_name", "wrapped"),
    [
        pytest.param(name, wrapped, id=f"{name}-{'wrapped' if wrapped else 'bare'}")
        for name, wrapped in COMBINATIONS
    ]
    + [pytest.param("rie", False, id="rie-bare")],
)
def test_next_invoke_after_init_error_initialises_again(
    run_function, platform_name: str, wrapped: bool
) -> None:
    run = run_function(platform_name, wrapped, "import_error.handler")
    # The module ran again for every invoke: the failed Init was retried, not remembered.
    # (The sandbox runs a failed Init twice per invoke, as Lambda's suppressed init does;
    # the RIE once. See test_conformance's INTENDED_DIFFERENCES.)
    assert run.import_attempts is not None and run.import_attempts >= INVOKES, run.output[-3000:]
    assert run.views[0] == run.views[1]


@pytest.mark.parametrize("platform_name", list(PLATFORMS))
def test_wrapper_really_ran(run_function, platform_name: str) -> None:
    """Without this, the equivalence above could hold because the wrapper failed open."""
    bare = run_function(platform_name, False, "wrapper_state.handler")
    wrapped = run_function(platform_name, True, "wrapper_state.handler")
    assert bare.views[0].body == {"entry_loaded": False}
    assert wrapped.views[0].body == {"entry_loaded": True}, wrapped.output[-3000:]
    assert WRAPPER_FAIL_OPEN not in wrapped.output
