"""The Telemetry API (``/2022-07-01/telemetry``) and the Logs API (``/2020-08-15/logs``).

Both subscribe an extension to the platform's event stream (contract 3.1). An
extension may use one or the other, not both: the documented rule, whose exact
answer is not known [U]; we answer 400 ``ValidationError`` naming the conflict.
A repeated subscription to the same API replaces the earlier one (the Logs API is
documented as idempotent; we treat the Telemetry API the same way).
Subscriptions close when Init ends: then 403 ``Telemetry.SubscriptionClosed``
(captured in production) or ``Logs.SubscriptionClosed``.

Without the Telemetry API (``supported=False``, ``lambda-wrapper run
--no-telemetry-api``) the sandbox answers a Telemetry API subscription as the RIE's
classic mode and the emulators built on it do: 202 ``Telemetry.NotSupported``, and
nothing is ever delivered.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .extensions_api import go_json_kind, identify
from .server import Request, Response, Router, error_response, go_json_syntax_error, json_response
from .state import Agent, EnvironmentState
from .subscription_rules import SubscriptionInvalid, SubscriptionRequest, parse_subscription

Subscribe = Callable[[Agent, SubscriptionRequest], None]

CLOSED = {
    "telemetry": ("Telemetry.SubscriptionClosed", "Telemetry API subscription is closed already"),
    "logs": ("Logs.SubscriptionClosed", "Logs API subscription is closed already"),
}
API_NAMES = {"telemetry": "Telemetry API", "logs": "Logs API"}


NOT_SUPPORTED_BODY = {"errorType": "Telemetry.NotSupported", "errorMessage": "Telemetry API is not supported"}


class TelemetryApi:
    def __init__(
        self, current_env: Callable[[], EnvironmentState], subscribe: Subscribe, supported: bool = True
    ) -> None:
        self._env = current_env
        self._subscribe = subscribe
        self._supported = supported

    def mount(self, router: Router) -> None:
        router.add("PUT", "/2022-07-01/telemetry", lambda request: self._handle(request, "telemetry"))
        router.add("PUT", "/2020-08-15/logs", lambda request: self._handle(request, "logs"))

    def _handle(self, request: Request, api: str) -> Response:
        env = self._env()
        agent_or_error = identify(env, request)
        if isinstance(agent_or_error, Response):
            return agent_or_error
        agent = agent_or_error
        # After the identifier, the body is parsed as RAPID's Go code does (into a map).
        try:
            body = json.loads(request.body())
        except ValueError as error:
            message = go_json_syntax_error(error, request.body())
            return error_response(400, "ValidationError", f"failed to parse JSON: {message}")
        if not isinstance(body, dict):
            kind = go_json_kind(body) if body is not None else ""
            if kind:
                message = f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
                return error_response(400, "ValidationError", f"failed to parse JSON: {message}")
        try:
            subscription = parse_subscription(api, body)
        except SubscriptionInvalid as invalid:
            return error_response(400, "ValidationError", str(invalid))
        with env.cond:
            if not env.subscriptions_open:
                return error_response(403, *CLOSED[api])
            if agent.subscribed_api not in (None, api):
                other = API_NAMES[agent.subscribed_api or ""]
                return error_response(
                    400,
                    "ValidationError",
                    f"extension {agent.name} is already subscribed to the {other}; the Logs API "
                    "and the Telemetry API cannot be used together",
                )
            agent.subscribed_api = api
        if api == "telemetry" and not self._supported:
            return json_response(202, NOT_SUPPORTED_BODY)
        self._subscribe(agent, subscription)
        return json_response(200, "OK")
