"""The Runtime API (``/2018-06-01``), with RAPID's state machine and answers (contract 1).

``/next`` never answers with an error or without ``Content-Type`` in a normal
flow: awslambdaric crashes on that (contract 9.1). A ``/next`` still blocked when
the environment is torn down gets no answer at all; its process is being killed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from .server import DropConnection, Request, Response, Router, error_response, json_response
from .state import EnvironmentState, InitFailure, Invocation, ResponseTiming, RuntimeStates

PREFIX = "/2018-06-01"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 + 100
FUNCTION_ARN_PREFIX = "arn:aws:lambda:us-east-1:012345678912:function:"
ERROR_TYPE_PATTERN = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")
NOT_ALLOWED = "State transition is not allowed"


class RuntimeEvents:
    """Hooks the lifecycle gives the API: what to do on the runtime's milestones."""

    def __init__(self, on_first_next: Callable[[], None], before_runtime_done: Callable[[], None]) -> None:
        self.on_first_next = on_first_next
        self.before_runtime_done = before_runtime_done


def normalise_error_type(value: str) -> str:
    """RAPID's ``fatalerror`` rule: keep a ``Runtime.X``/``Function.X`` type, else Unknown."""
    if ERROR_TYPE_PATTERN.search(value):
        return value
    return "Function.Unknown" if value.startswith("Function.") else "Runtime.Unknown"


def transition_refused(current: str, target: str) -> Response:
    message = f"State transition from {current} to {target} failed for runtime. Error: {NOT_ALLOWED}"
    return error_response(403, "InvalidStateTransition", message)


class RuntimeApi:
    def __init__(self, current_env: Callable[[], EnvironmentState], hooks: RuntimeEvents) -> None:
        self._env = current_env
        self._hooks = hooks

    def mount(self, router: Router) -> None:
        router.add("GET", f"{PREFIX}/runtime/invocation/next", self.next)
        router.add("POST", f"{PREFIX}/runtime/invocation/{{request_id}}/response", self.response)
        router.add("POST", f"{PREFIX}/runtime/invocation/{{request_id}}/error", self.error)
        router.add("POST", f"{PREFIX}/runtime/init/error", self.init_error)
        router.add("GET", f"{PREFIX}/ping", lambda request: Response(200, b"pong"))

    def next(self, request: Request) -> Response:
        env = self._env()
        first = False
        with env.cond:
            if env.runtime_state in (RuntimeStates.STARTED, RuntimeStates.RESPONSE_SENT):
                first = env.runtime_state == RuntimeStates.STARTED
                env.runtime_state = RuntimeStates.READY
                env.cond.notify_all()
            elif env.runtime_state not in (RuntimeStates.READY, RuntimeStates.RUNNING):
                return transition_refused(env.runtime_state, RuntimeStates.READY)
        if first:
            self._hooks.on_first_next()
        with env.cond:
            env.cond.wait_for(lambda: env.closed or _undelivered(env) is not None)
            invocation = _undelivered(env)
            if env.closed or invocation is None:
                raise DropConnection()
            invocation.delivered = True
            env.runtime_state = RuntimeStates.RUNNING
            env.cond.notify_all()
        return Response(200, invocation.payload, _invoke_headers(invocation, env.function_name))

    def response(self, request: Request) -> Response:
        return self._answer(request, "response")

    def error(self, request: Request) -> Response:
        return self._answer(request, "error")

    def _answer(self, request: Request, outcome: str) -> Response:
        arrived, arrived_wall = time.monotonic(), time.time()
        env = self._env()
        target = (
            RuntimeStates.INVOCATION_RESPONSE
            if outcome == "response"
            else RuntimeStates.INVOCATION_ERROR_RESPONSE
        )
        with env.cond:
            invocation = env.invocation
            if invocation is None or invocation.request_id != request.params["request_id"]:
                return error_response(400, "InvalidRequestID", "Invalid request ID")
            if env.runtime_state != RuntimeStates.RUNNING:
                return transition_refused(env.runtime_state, target)
            env.runtime_state = target
        body = request.body()
        read_done = time.monotonic()
        too_large = len(body) > MAX_PAYLOAD_BYTES
        if too_large:
            body = json.dumps(
                {
                    "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed "
                    f"payload size ({MAX_PAYLOAD_BYTES} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
            ).encode()
            outcome = "error"
        error_type = _error_type(request, body) if outcome == "error" else None
        self._hooks.before_runtime_done()
        with env.cond:
            invocation.outcome = outcome
            invocation.body = body
            invocation.error_type = error_type
            invocation.timing = ResponseTiming(arrived, arrived_wall, read_done)
            env.runtime_state = RuntimeStates.RESPONSE_SENT
            env.cond.notify_all()
        if too_large:
            return error_response(
                413,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).",
            )
        return json_response(202, {"status": "OK"})

    def init_error(self, request: Request) -> Response:
        env = self._env()
        body = request.body()
        with env.cond:
            if env.runtime_state != RuntimeStates.STARTED:
                return transition_refused(env.runtime_state, RuntimeStates.INIT_ERROR)
            header_type = request.header("Lambda-Runtime-Function-Error-Type")
            env.init_error = InitFailure(normalise_error_type(header_type), body)
            env.runtime_state = RuntimeStates.INIT_ERROR
            env.cond.notify_all()
        return json_response(202, {"status": "OK"})


def _undelivered(env: EnvironmentState) -> Invocation | None:
    invocation = env.invocation
    return invocation if invocation is not None and not invocation.delivered else None


def _invoke_headers(invocation: Invocation, function_name: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN_PREFIX + function_name,
    }
    if invocation.trace_id:
        headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
    if invocation.client_context:
        headers["Lambda-Runtime-Client-Context"] = invocation.client_context
    return headers


def _error_type(request: Request, body: bytes) -> str:
    """The header if the runtime sent one, else the body's ``errorType`` (awslambdaric
    sends no header for function errors)."""
    header = request.header("Lambda-Runtime-Function-Error-Type")
    if header:
        return normalise_error_type(header)
    try:
        parsed = json.loads(body)
    except ValueError:
        return "Function.Unknown"
    if isinstance(parsed, dict) and isinstance(parsed.get("errorType"), str) and parsed["errorType"]:
        return str(parsed["errorType"])
    return "Function.Unknown"
