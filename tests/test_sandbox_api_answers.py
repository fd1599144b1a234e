"""The APIs' answers, byte for byte, against the exchanges captured from the RIE (tests/fixtures).

The handlers are mounted on a real loopback server over a hand-made environment
state, so every error path can be reached without processes.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures import api_exchanges
from lambda_wrapper_dev.sandbox.extensions_api import ExtensionsApi
from lambda_wrapper_dev.sandbox.runtime_api import RuntimeApi, RuntimeEvents
from lambda_wrapper_dev.sandbox.server import PlatformServer, Router
from lambda_wrapper_dev.sandbox.state import (
    AgentEvent,
    AgentStates,
    EnvironmentState,
    Invocation,
    RuntimeStates,
)
from lambda_wrapper_dev.sandbox.telemetry_api import TelemetryApi

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def exchanges() -> dict[str, Any]:
    return api_exchanges()


class Api:
    def __init__(self) -> None:
        self.env = EnvironmentState("test_function", "app.handler", ["ext-file"])
        router = Router()
        RuntimeApi(lambda: self.env, RuntimeEvents(lambda: None, lambda: None)).mount(router)
        ExtensionsApi(lambda: self.env, lambda agent: None).mount(router)
        TelemetryApi(lambda: self.env, lambda agent, request: None).mount(router)
        self.server = PlatformServer(router)
        self.server.start()

    def call(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        answer = response.status, dict(response.headers), response.read()
        connection.close()
        return answer

    def register(self, name: str, events: list[str]) -> tuple[int, dict[str, str], bytes]:
        return self.call(
            "POST", "/2020-01-01/extension/register", {"events": events}, {"Lambda-Extension-Name": name}
        )


@pytest.fixture
def api() -> Iterator[Api]:
    instance = Api()
    yield instance
    instance.env.close()
    instance.server.close()


def expect(answer: tuple[int, dict[str, str], bytes], entry: dict[str, Any]) -> None:
    status, headers, body = answer
    assert status == entry["response"]["status"]
    assert body.endswith(b"\n") and headers["Content-Type"] == "application/json"
    assert json.loads(body) == entry["response"]["body"]
    if "raw_body" in entry["response"]:  # captured: the bytes as the RIE sent them
        assert body == entry["response"]["raw_body"].encode()


def test_register_answers(api: Api, exchanges: dict[str, Any]) -> None:
    status, headers, body = api.call(
        "POST",
        "/2020-01-01/extension/register",
        {"events": ["INVOKE"]},
        {"Lambda-Extension-Name": "my-internal-ext", "Lambda-Extension-Accept-Feature": "accountId"},
    )
    assert status == 200 and uuid.UUID(headers["Lambda-Extension-Identifier"])
    # The RIE has no account and leaves accountId out although the feature was asked for;
    # Lambda puts it first (the conformance suite lists this as an intended difference).
    assert list(json.loads(body)) == ["accountId", *exchanges["register_ok"]["response"]["body"]]
    assert json.loads(body)["functionName"] == "test_function"
    expect(api.register("other", ["INVOKE", "SHUTDOWN"]), exchanges["register_internal_shutdown_rejected"])
    expect(
        api.call("POST", "/2020-01-01/extension/register", {"events": []}), exchanges["register_missing_name"]
    )
    expect(api.register("my-internal-ext", []), exchanges["register_duplicate_name"])
    for index in range(8):  # with the external file and the first one: 10
        assert api.register(f"filler-{index}", [])[0] == 200
    expect(api.register("eleventh", []), exchanges["register_too_many"])
    api.env.registration_open = False
    expect(api.register("late", []), exchanges["register_after_runtime_ready"])
    status, _, body = api.call(
        "POST", "/2020-01-01/extension/register", b"{broken", {"Lambda-Extension-Name": "x"}
    )
    assert status == 403 and json.loads(body)["errorType"] == "InvalidRequestFormat"


def test_extension_identifier_answers(api: Api, exchanges: dict[str, Any]) -> None:
    next_path = "/2020-01-01/extension/event/next"
    expect(api.call("GET", next_path), exchanges["next_missing_identifier"])
    expect(
        api.call("GET", next_path, headers={"Lambda-Extension-Identifier": "nope"}),
        exchanges["next_invalid_identifier"],
    )
    unknown = str(uuid.uuid4())
    status, _, body = api.call("GET", next_path, headers={"Lambda-Extension-Identifier": unknown})
    assert (status, json.loads(body)) == (
        403,
        {"errorMessage": f"Unknown extension {unknown}", "errorType": "Extension.UnknownExtensionIdentifier"},
    )
    extension_id = api.register("worker", ["INVOKE"])[1]["Lambda-Extension-Identifier"]
    expect(
        api.call(
            "POST", "/2020-01-01/extension/init/error", {}, {"Lambda-Extension-Identifier": extension_id}
        ),
        exchanges["extension_error_missing_type_header"],
    )
    expect(
        api.call(
            "POST",
            "/2020-01-01/extension/init/error",
            exchanges["extension_init_error_ok"]["request"]["body"],
            {
                "Lambda-Extension-Identifier": extension_id,
                "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid",
            },
        ),
        exchanges["extension_init_error_ok"],
    )
    status, _, body = api.call("GET", next_path, headers={"Lambda-Extension-Identifier": extension_id})
    assert status == 403 and json.loads(body)["errorMessage"].startswith(
        "State transition from InitError to Ready"
    )


def test_telemetry_answers(api: Api, exchanges: dict[str, Any]) -> None:
    extension_id = api.register("listener", [])[1]["Lambda-Extension-Identifier"]
    headers = {"Lambda-Extension-Identifier": extension_id, "Content-Type": "application/json"}
    ok = exchanges["telemetry_subscribe_ok"]["request"]["body"]
    status, answer_headers, body = api.call("PUT", "/2022-07-01/telemetry", ok, headers)
    assert (status, body) == (200, b'"OK"\n') and answer_headers["Content-Type"] == "application/json"
    invalid = {**ok, "types": [], "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain"}}
    expect(
        api.call("PUT", "/2022-07-01/telemetry", invalid, headers),
        exchanges["telemetry_subscribe_validation_error"],
    )
    api.env.subscriptions_open = False
    expect(
        api.call("PUT", "/2022-07-01/telemetry", ok, headers),
        exchanges["telemetry_subscribe_after_init"],
    )
    status, _, _ = api.call("PUT", "/2022-07-01/telemetry", ok, {})
    assert status == 403


def test_runtime_answers(api: Api, exchanges: dict[str, Any]) -> None:
    api.env.runtime_state = RuntimeStates.RUNNING
    api.env.invocation = Invocation("req-1", b"{}", 0, None, None, delivered=True)
    expect(
        api.call("POST", "/2018-06-01/runtime/invocation/other/response", b"{}"),
        exchanges["runtime_response_wrong_id"],
    )
    expect(
        api.call("POST", "/2018-06-01/runtime/invocation/req-1/response", b"x" * (6 * 1024 * 1024 + 101)),
        exchanges["runtime_response_too_large"],
    )
    assert api.env.invocation.error_type == "Function.ResponseSizeTooLarge"
    status, _, body = api.call("POST", "/2018-06-01/runtime/invocation/req-1/response", b"{}")
    assert status == 403 and json.loads(body) == {
        "errorMessage": "State transition from RuntimeResponseSentState to InvocationResponse failed for "
        "runtime. Error: State transition is not allowed",
        "errorType": "InvalidStateTransition",
    }
    api.env.runtime_state = RuntimeStates.RUNNING
    api.env.invocation = Invocation("req-2", b"{}", 0, None, None, delivered=True)
    expect(
        api.call("POST", "/2018-06-01/runtime/invocation/req-2/response", b'{"a": 1}'),
        exchanges["runtime_response_ok"],
    )
    assert api.env.invocation.body == b'{"a": 1}'
    status, _, body = api.call("POST", "/2018-06-01/runtime/init/error", b"{}")
    assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"


def test_init_error_then_next_is_refused(api: Api) -> None:
    status, _, body = api.call(
        "POST",
        "/2018-06-01/runtime/init/error",
        b'{"errorType": "x"}',
        {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
    )
    assert (status, body) == (202, b'{"status":"OK"}\n')
    assert api.env.init_error is not None and api.env.init_error.error_type == "Runtime.ImportModuleError"
    status, _, body = api.call("GET", "/2018-06-01/runtime/invocation/next")
    assert status == 403 and json.loads(body) == {
        "errorMessage": "State transition from InitError to Ready failed for runtime. "
        "Error: State transition is not allowed",
        "errorType": "InvalidStateTransition",
    }


def test_a_second_next_while_one_is_pending_is_refused(api: Api, exchanges: dict[str, Any]) -> None:
    """An extension thread that died inside event/next and was restarted asks again while
    the first call still waits: the RIE refuses the second (Ready to Ready), so the event
    the first call picks up is never handed to two callers."""
    next_path = "/2020-01-01/extension/event/next"
    extension_id = api.register("worker", ["INVOKE"])[1]["Lambda-Extension-Identifier"]
    identified = {"Lambda-Extension-Identifier": extension_id}

    def wait_for_an_event() -> None:
        try:
            api.call("GET", next_path, headers=identified)
        except (OSError, http.client.HTTPException):
            pass  # the environment closes with the call still waiting

    pending = threading.Thread(target=wait_for_an_event, daemon=True)
    pending.start()
    with api.env.cond:
        assert api.env.cond.wait_for(lambda: api.env.agents[-1].state == AgentStates.READY, timeout=5)
    captured = exchanges["next_while_one_is_pending"]
    captured_id = captured["request"]["headers"]["Lambda-Extension-Identifier"]
    status, headers, body = api.call("GET", next_path, headers=identified)
    assert status == captured["response"]["status"]
    assert headers["Content-Type"] == "application/json"
    assert body == captured["response"]["raw_body"].replace(captured_id, extension_id).encode()


def test_a_pending_next_is_woken_by_its_own_event_only(api: Api) -> None:
    """RAPID's wait for an extension's event costs nothing; here a waiting /event/next is
    a Python thread of the platform's process. It waits on a condition of its own, so the
    changes every invocation makes to the environment (the invoke, the runtime's /next
    and /response) do not wake it to compete with the runtime's handlers for this
    process: the sandbox's runtime duration would otherwise grow with each extension."""
    next_path = "/2020-01-01/extension/event/next"
    extension_id = api.register("background", [])[1]["Lambda-Extension-Identifier"]
    answers: list[tuple[int, dict[str, str], bytes]] = []
    pending = threading.Thread(
        target=lambda: answers.append(
            api.call("GET", next_path, headers={"Lambda-Extension-Identifier": extension_id})
        ),
        daemon=True,
    )
    pending.start()
    env = api.env
    agent = env.agents[-1]
    with env.cond:
        assert env.cond.wait_for(lambda: agent.state == AgentStates.READY, timeout=5)
        assert agent.wakeup is not None
        # Inside wait_for: the agent's own condition holds its waiter, the environment's none.
        assert env.cond.wait_for(lambda: len(agent.wakeup._waiters) == 1, timeout=5)  # type: ignore[union-attr]
        assert not env.cond._waiters  # type: ignore[attr-defined]
        env.cond.notify_all()  # what every change of state does
    pending.join(0.2)
    assert pending.is_alive() and not answers
    with env.cond:
        env.deliver(agent, AgentEvent(b'{"eventType": "SHUTDOWN"}'))
    pending.join(5)
    assert answers and answers[0][0] == 200 and json.loads(answers[0][2]) == {"eventType": "SHUTDOWN"}
