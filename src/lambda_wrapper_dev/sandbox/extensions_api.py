"""The Extensions API (``/2020-01-01``), answering like RAPID (contract 2).

A registration whose name matches a file the platform launched from
``/opt/extensions`` is external; any other name creates an internal extension.
Registration closes at the runtime's first ``/next``. Every error is a 403 with
RAPID's ``errorType`` and message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from lambda_wrapper.malformed import json_kind

from .server import (
    DropConnection,
    Request,
    Response,
    Router,
    error_response,
    go_json_syntax_error,
    json_response,
)
from .state import MAX_EXTENSIONS, Agent, AgentStates, EnvironmentState

PREFIX = "/2020-01-01/extension"
ACCOUNT_ID = "012345678912"
TRANSITION_FAILED = (
    "State transition from {0} to {1} failed for extension {2}. Error: State transition is not allowed"
)


class ExtensionsApi:
    def __init__(
        self, current_env: Callable[[], EnvironmentState], on_registered: Callable[[Agent], None]
    ) -> None:
        self._env = current_env
        self._on_registered = on_registered

    def mount(self, router: Router) -> None:
        router.add("POST", f"{PREFIX}/register", self.register)
        router.add("GET", f"{PREFIX}/event/next", self.next)
        router.add("POST", f"{PREFIX}/init/error", lambda request: self._report_error(request, "init"))
        router.add("POST", f"{PREFIX}/exit/error", lambda request: self._report_error(request, "exit"))

    def register(self, request: Request) -> Response:
        # RAPID's order: the name, then the body as Go decodes it (syntax, then field
        # types), then deprecated configurationKeys, then each event in turn.
        name = request.header("Lambda-Extension-Name")
        if not name:
            return error_response(403, "Extension.InvalidExtensionName", "Empty extension name")
        try:
            parsed = json.loads(request.body())
        except ValueError as error:
            return error_response(403, "InvalidRequestFormat", go_json_syntax_error(error, request.body()))
        type_error = register_body_type_error(parsed)
        if type_error:
            return error_response(403, "InvalidRequestFormat", type_error)
        if parsed and parsed.get("configurationKeys"):
            return error_response(
                403,
                "InvalidRequestFormat",
                "configurationKeys are deprecated; use environment variables instead",
            )
        events = (parsed or {}).get("events") or []
        features = {item.strip() for item in request.header("Lambda-Extension-Accept-Feature").split(",")}
        env = self._env()
        with env.cond:
            result = self._register_locked(env, name, events)
            if isinstance(result, Response):
                return result
            env.cond.notify_all()
        self._on_registered(result)
        body: dict[str, str] = {}
        if "accountId" in features:
            body["accountId"] = ACCOUNT_ID
        body.update({"functionName": env.function_name, "functionVersion": "$LATEST", "handler": env.handler})
        return json_response(200, body, {"Lambda-Extension-Identifier": result.id})

    def _register_locked(self, env: EnvironmentState, name: str, events: list[str]) -> Agent | Response:
        agent = env.external_agent(name)
        for event_name in events:
            if event_name not in ("INVOKE", "SHUTDOWN"):
                return error_response(
                    403, "Extension.InvalidEventType", f"{event_name}: ErrorInvalidEventType"
                )
            if agent is None and event_name == "SHUTDOWN":
                return error_response(
                    403,
                    "Extension.InvalidEventType",
                    "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
                )
        if agent is not None:
            if agent.state != AgentStates.STARTED:
                return error_response(
                    403,
                    "Extension.InvalidExtensionState",
                    TRANSITION_FAILED.format(agent.state, AgentStates.REGISTERED, name),
                )
        else:
            if not env.registration_open:
                return error_response(
                    403, "Extension.RegistrationClosed", "Extension registration closed already"
                )
            if any(not existing.external and existing.name == name for existing in env.agents):
                return error_response(
                    403, "Extension.InvalidExtensionState", "Extension with this name already registered"
                )
            if len(env.agents) >= MAX_EXTENSIONS:
                return error_response(
                    403, "Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached"
                )
            agent = Agent(name, external=False)
            env.agents.append(agent)
        agent.events = list(dict.fromkeys(events))
        agent.state = AgentStates.REGISTERED
        return agent

    def next(self, request: Request) -> Response:
        env = self._env()
        agent_or_error = identify(env, request)
        if isinstance(agent_or_error, Response):
            return agent_or_error
        agent = agent_or_error
        with env.cond:
            # Ready only from Registered or Running: a second event/next while one is
            # still waiting is refused (Ready to Ready), as RAPID's agent states do.
            if agent.state not in (AgentStates.REGISTERED, AgentStates.RUNNING):
                return error_response(
                    403,
                    "Extension.InvalidExtensionState",
                    TRANSITION_FAILED.format(agent.state, AgentStates.READY, agent.id),
                )
            agent.state = AgentStates.READY
            env.cond.notify_all()
            env.agent_wakeup(agent).wait_for(lambda: env.closed or agent.inbox is not None)
            if agent.inbox is None:
                raise DropConnection()
            event = agent.inbox
            agent.inbox = None
            agent.state = AgentStates.RUNNING
            env.cond.notify_all()
        return Response(
            200,
            event.body,
            {"Lambda-Extension-Event-Identifier": event.event_id, "Content-Type": event.content_type},
        )

    def _report_error(self, request: Request, phase: str) -> Response:
        # RAPID's order: the identifier header (present, a UUID), then the error-type
        # header, and only then whether the identifier belongs to an extension.
        env = self._env()
        agent_id_or_error = parse_identifier(request)
        if isinstance(agent_id_or_error, Response):
            return agent_id_or_error
        error_type = request.header("Lambda-Extension-Function-Error-Type")
        if not error_type:
            return error_response(
                403, "Extension.MissingHeader", "Lambda-Extension-Function-Error-Type not found"
            )
        with env.cond:
            agent = env.agent_by_id(agent_id_or_error)
        if agent is None:
            return error_response(
                403, "Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier"
            )
        target = AgentStates.INIT_ERROR if phase == "init" else AgentStates.EXIT_ERROR
        allowed = (
            (AgentStates.REGISTERED,)
            if phase == "init"
            else (AgentStates.REGISTERED, AgentStates.READY, AgentStates.RUNNING)
        )
        with env.cond:
            if agent.state == target:
                return json_response(202, {"status": "OK"})  # only the first error counts
            if agent.state not in allowed:
                return error_response(
                    403,
                    "Extension.InvalidExtensionState",
                    TRANSITION_FAILED.format(agent.state, target, agent.id),
                )
            agent.state = target
            agent.error_type = error_type
            env.cond.notify_all()
        return json_response(202, {"status": "OK"})


def parse_identifier(request: Request) -> str | Response:
    """RAPID's identifier middleware: the header must be present and a UUID."""
    raw = request.header("Lambda-Extension-Identifier")
    if not raw:
        return error_response(
            403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header"
        )
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return error_response(
            403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier"
        )


def identify(env: EnvironmentState, request: Request) -> Agent | Response:
    """The identifier middleware, then the extension it names (event/next's order)."""
    agent_id = parse_identifier(request)
    if isinstance(agent_id, Response):
        return agent_id
    with env.cond:
        agent = env.agent_by_id(agent_id)
    if agent is None:
        return error_response(403, "Extension.UnknownExtensionIdentifier", f"Unknown extension {agent_id}")
    return agent


REGISTER_BODY_GO_TYPE = (
    'struct { handler.RegisterRequest; ConfigurationKeys []string "json:\\"configurationKeys\\"" }'
)


def register_body_type_error(parsed: object) -> str:
    """The error Go's ``json.Unmarshal`` gives for a register body of the wrong shape, or "".

    JSON ``null`` decodes into the empty request, as in Go.
    """
    if parsed is None:
        return ""
    if not isinstance(parsed, dict):
        return f"json: cannot unmarshal {go_json_kind(parsed)} into Go value of type {REGISTER_BODY_GO_TYPE}"
    events = parsed.get("events")
    if events is not None and not isinstance(events, list):
        return (
            f"json: cannot unmarshal {go_json_kind(events)} into Go struct field "
            ".RegisterRequest.events of type []core.Event"
        )
    for item in events or []:
        if item is not None and not isinstance(item, str):
            return (
                f"json: cannot unmarshal {go_json_kind(item)} into Go struct field "
                ".RegisterRequest.events of type core.Event"
            )
    return ""


def go_json_kind(value: object) -> str:
    """How Go's JSON decoder names the kind of a value in its type errors."""
    kind = json_kind(value)
    return {"boolean": "bool", "null": "object"}.get(kind, kind)
