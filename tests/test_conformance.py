"""The sandbox must answer the Runtime and Extensions APIs the way the official RIE does.

Each scenario is a probe runtime (``tests/probes/``) plus what we expect it to observe,
round by round (one round per invoke). Every scenario runs once per platform and
module; then

- each observed step must match the expectation written here (so a change in the
  pinned RIE shows up too), and
- the two platforms must agree with each other on every step, except where a
  difference is intended; each such difference is listed in INTENDED_DIFFERENCES
  with the reason.

What is compared is what a client can observe: status codes, ``errorType`` and
``errorMessage`` (ids masked), JSON body keys in order, and the names of the
``Lambda-*`` headers plus ``Content-Type``. Transport headers (Date, Server,
Content-Length, Connection) belong to the HTTP library and are not compared.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from platforms import (
    PLATFORMS,
    PROBES_DIR,
    FunctionUnderTest,
    Invocation,
    Platform,
    RiePlatform,
    probe_function,
    skip_unless_rie_can_run,
)
from test_rie_managed_instances import EXAMPLE_DIR as HELLO_DIR
from test_rie_managed_instances import EXPORT_FILE, invoke_when_idle, read_records

TRACE_ID = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FUNCTION_NAME = "conformance-probe"

ERROR_KEYS = ["errorMessage", "errorType"]
JSON = "application/json"
ACCEPTED = {"status": 202, "body_keys": ["status"], "body_status": "OK", "content_type": JSON}
RUNTIME_NEXT_HEADERS = [
    "lambda-runtime-aws-request-id",
    "lambda-runtime-deadline-ms",
    "lambda-runtime-invoked-function-arn",
]


def api_error(status: int, error_type: str, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "body_keys": ERROR_KEYS,
        "errorType": error_type,
        "errorMessage": message,
        "content_type": JSON,
        "lambda_headers": [],
    }


def invalid_state(from_state: str, to_state: str) -> dict[str, Any]:
    message = (
        f"State transition from {from_state} to {to_state} failed for runtime. "
        "Error: State transition is not allowed"
    )
    return api_error(403, "InvalidStateTransition", message)


@dataclass(frozen=True)
class Round:
    """One invoke: what the invoking client gets, and what the probe saw meanwhile."""

    invocation: dict[str, Any]
    steps: dict[str, Any]
    payload: bytes = b'{"x": 1}'


@dataclass(frozen=True)
class Scenario:
    probe: str
    rounds: tuple[Round, ...]
    timeout_s: float = 3.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IntendedDifference:
    """A step where the sandbox deliberately differs from the RIE (and why)."""

    reason: str
    expected: dict[str, Any]  # platform name -> expected step
    # When set, expected[platform] is a tuple with one expectation per round.
    per_round: bool = False
    # Still compare the step across platforms (after ``comparable`` removed the difference).
    compare_across: bool = False


@dataclass
class RoundResult:
    invocation: Invocation
    observations: dict[str, Any]
    platform_output: str = ""


SCENARIOS: dict[str, Scenario] = {
    "extension_lifecycle": Scenario(
        probe="extension_lifecycle.py",
        rounds=(
            Round(
                invocation={"status_code": 200, "body": '{"probe": "extension_lifecycle"}'},
                steps={
                    "register_ok": {
                        "status": 200,
                        "content_type": JSON,
                        "lambda_headers": ["lambda-extension-identifier"],
                    },
                    "register_ok_body": {
                        "functionName": FUNCTION_NAME,
                        "functionVersion": "$LATEST",
                        "handler": "app.handler",
                    },
                    # Registered without the accountId feature: no accountId on any platform.
                    "register_no_events": {
                        "status": 200,
                        "body_keys": ["functionName", "functionVersion", "handler"],
                        "lambda_headers": ["lambda-extension-identifier"],
                    },
                    "register_internal_shutdown": api_error(
                        403,
                        "Extension.InvalidEventType",
                        "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
                    ),
                    "register_missing_name": api_error(
                        403, "Extension.InvalidExtensionName", "Empty extension name"
                    ),
                    "register_duplicate_name": api_error(
                        403, "Extension.InvalidExtensionState", "Extension with this name already registered"
                    ),
                    "register_after_next": api_error(
                        403, "Extension.RegistrationClosed", "Extension registration closed already"
                    ),
                    "event_next_missing_identifier": api_error(
                        403,
                        "Extension.MissingExtensionIdentifier",
                        "Missing Lambda-Extension-Identifier header",
                    ),
                    "event_next_invalid_identifier": api_error(
                        403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier"
                    ),
                    "event_next_unknown_identifier": api_error(
                        403, "Extension.UnknownExtensionIdentifier", "Unknown extension <id>"
                    ),
                    "extension_invoke_event": {
                        "status": 200,
                        "body_keys": [
                            "eventType",
                            "deadlineMs",
                            "requestId",
                            "invokedFunctionArn",
                            "tracing",
                        ],
                        "tracing_keys": ["type", "value"],
                        "content_type": JSON,
                        "lambda_headers": ["lambda-extension-event-identifier"],
                    },
                    "extension_invoke_event_tracing": {"type": "X-Amzn-Trace-Id", "value": TRACE_ID},
                    "extension_saw_invoke_before_response": True,
                    "extension_and_runtime_request_ids_match": True,
                    "runtime_next": {"status": 200, "body_keys": ["x"], "content_type": JSON},
                    "runtime_next_body": '{"x": 1}',
                    "response_wrong_request_id": api_error(400, "InvalidRequestID", "Invalid request ID"),
                    "error_wrong_request_id": api_error(400, "InvalidRequestID", "Invalid request ID"),
                    "response_ok": {**ACCEPTED, "lambda_headers": []},
                    "response_twice": invalid_state("RuntimeResponseSentState", "InvocationResponse"),
                },
            ),
        ),
    ),
    # Requests with one or two things wrong: which problem the platform reports first.
    "extension_errors": Scenario(
        probe="extension_errors.py",
        rounds=(
            Round(
                invocation={"status_code": 200, "body": '{"probe": "extension_errors"}'},
                steps={
                    "register_missing_name_and_invalid_event": api_error(
                        403, "Extension.InvalidExtensionName", "Empty extension name"
                    ),
                    "register_missing_name_and_bad_json": api_error(
                        403, "Extension.InvalidExtensionName", "Empty extension name"
                    ),
                    "register_configuration_keys_and_invalid_event": api_error(
                        403,
                        "InvalidRequestFormat",
                        "configurationKeys are deprecated; use environment variables instead",
                    ),
                    "register_invalid_event_then_shutdown": api_error(
                        403, "Extension.InvalidEventType", "BOGUS: ErrorInvalidEventType"
                    ),
                    "register_shutdown_then_invalid_event": api_error(
                        403,
                        "Extension.InvalidEventType",
                        "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
                    ),
                    "register_duplicate_and_invalid_event": api_error(
                        403, "Extension.InvalidEventType", "BOGUS: ErrorInvalidEventType"
                    ),
                    "register_lowercase_event": api_error(
                        403, "Extension.InvalidEventType", "invoke: ErrorInvalidEventType"
                    ),
                    # Go's encoding/json messages, as RAPID passes them on.
                    "register_events_not_a_list": api_error(
                        403,
                        "InvalidRequestFormat",
                        "json: cannot unmarshal string into Go struct field .RegisterRequest.events of type "
                        "[]core.Event",
                    ),
                    "register_event_not_a_string": api_error(
                        403,
                        "InvalidRequestFormat",
                        "json: cannot unmarshal number into Go struct field .RegisterRequest.events of type "
                        "core.Event",
                    ),
                    "register_body_an_array": api_error(
                        403,
                        "InvalidRequestFormat",
                        "json: cannot unmarshal array into Go value of type struct { "
                        "handler.RegisterRequest; "
                        "ConfigurationKeys []string "
                        '"json:\\"configurationKeys\\"" }',
                    ),
                    "register_empty_body": api_error(
                        403, "InvalidRequestFormat", "unexpected end of JSON input"
                    ),
                    "register_bad_json": api_error(
                        403,
                        "InvalidRequestFormat",
                        "invalid character 'n' looking for beginning of object key string",
                    ),
                    # The identifier's presence and form first, then the error-type
                    # header, then whether the identifier names an extension.
                    **{
                        f"{kind}_error_{case}": expected
                        for kind in ("init", "exit")
                        for case, expected in {
                            "missing_identifier_and_type": api_error(
                                403,
                                "Extension.MissingExtensionIdentifier",
                                "Missing Lambda-Extension-Identifier header",
                            ),
                            "invalid_identifier_and_missing_type": api_error(
                                403,
                                "Extension.InvalidExtensionIdentifier",
                                "Invalid Lambda-Extension-Identifier",
                            ),
                            "unknown_identifier_and_missing_type": api_error(
                                403,
                                "Extension.MissingHeader",
                                "Lambda-Extension-Function-Error-Type not found",
                            ),
                            "unknown_identifier": api_error(
                                403,
                                "Extension.UnknownExtensionIdentifier",
                                "Unknown Lambda-Extension-Identifier",
                            ),
                            "missing_type": api_error(
                                403,
                                "Extension.MissingHeader",
                                "Lambda-Extension-Function-Error-Type not found",
                            ),
                        }.items()
                    },
                    # chi's answers for a known path with another method, and an unknown path.
                    "register_wrong_method": {"status": 405, "body": "", "content_type": None},
                    "event_next_wrong_method": {"status": 405, "body": "", "content_type": None},
                    "init_error_wrong_method": {"status": 405, "body": "", "content_type": None},
                    "unknown_extension_path": {
                        "status": 404,
                        "body": "404 page not found",
                        "content_type": "text/plain; charset=utf-8",
                    },
                    # After the runtime's first next: events are still checked first.
                    "register_after_next_invalid_event": api_error(
                        403, "Extension.InvalidEventType", "BOGUS: ErrorInvalidEventType"
                    ),
                    "register_after_next_duplicate": api_error(
                        403, "Extension.RegistrationClosed", "Extension registration closed already"
                    ),
                    "register_after_next_bad_json": api_error(
                        403,
                        "InvalidRequestFormat",
                        "invalid character 'n' looking for beginning of object key string",
                    ),
                    "init_error_after_init": api_error(
                        403,
                        "Extension.InvalidExtensionState",
                        "State transition from Ready to InitError failed for extension <id>. "
                        "Error: State transition is not allowed",
                    ),
                    "event_next_unknown_identifier_after_init": api_error(
                        403, "Extension.UnknownExtensionIdentifier", "Unknown extension <id>"
                    ),
                    "response_ok": {**ACCEPTED, "lambda_headers": []},
                    "complete": True,
                },
            ),
        ),
    ),
    "echo_runtime": Scenario(
        probe="echo_runtime.py",
        env={"PROBE_TIMEOUT_MS": "3000"},
        rounds=tuple(
            Round(
                payload=f'{{"round": {number}}}'.encode(),
                invocation={"status_code": 200, "body": f'{{"round": {number}}}'},
                steps={
                    f"round{number}_next": {"status": 200, "body_keys": ["round"], "content_type": JSON},
                    f"round{number}_values": {
                        "deadline_within_timeout": True,
                        "arn_function_name": FUNCTION_NAME,
                    },
                    f"round{number}_response": {**ACCEPTED, "lambda_headers": []},
                },
            )
            for number in (1, 2)
        ),
    ),
    "invocation_error": Scenario(
        probe="invocation_error.py",
        rounds=(
            Round(
                # The invoker gets the error document exactly as the runtime posted it.
                invocation={
                    "status_code": 200,
                    "json": {
                        "errorMessage": "boom",
                        "errorType": "ValueError",
                        "requestId": "<id>",
                        "stackTrace": [],
                    },
                },
                steps={
                    "invocation_error": {**ACCEPTED, "lambda_headers": []},
                    "response_after_error": invalid_state("RuntimeResponseSentState", "InvocationResponse"),
                },
            ),
            Round(
                payload=b'{"again": true}',
                invocation={"status_code": 200, "body": '{"again": true}'},
                steps={
                    "second_next": {"status": 200, "body_keys": ["again"]},
                    "second_response": {**ACCEPTED, "lambda_headers": []},
                },
            ),
        ),
    ),
    "init_error": Scenario(
        probe="init_error.py",
        rounds=tuple(
            Round(
                # 502, with the init error document as the runtime posted it; the next
                # invoke starts the runtime again and gets the same answer.
                invocation={
                    "status_code": 502,
                    "json": {
                        "errorMessage": "Unable to import module 'nope': No module named 'nope'",
                        "errorType": "Runtime.ImportModuleError",
                        "requestId": "",
                        "stackTrace": [],
                    },
                },
                steps={
                    "init_starts": None,  # see INTENDED_DIFFERENCES
                    "init_error": {**ACCEPTED, "lambda_headers": []},
                    # Init ends when the runtime exits, not when it posts the error: a
                    # runtime may still flush logs or telemetry after reporting.
                    "alive_after_init_error": True,
                    "complete": True,
                    "init_error_twice": invalid_state("InitError", "InitError"),
                },
            )
            for _ in range(2)
        ),
    ),
    "never_responds": Scenario(
        probe="never_responds.py",
        timeout_s=1.0,
        rounds=(
            Round(
                invocation={"status_code": 200, "body_contains": "Task timed out after 1.00 seconds"},
                steps={"next": {"status": 200}},
            ),
        ),
    ),
}

INTENDED_DIFFERENCES: dict[tuple[str, str], IntendedDifference] = {
    ("extension_lifecycle", "register_ok"): IntendedDifference(
        reason="the probe asks for the accountId feature; the RIE has no account id and omits the "
        "field (omitempty), Lambda and the sandbox return it first (contract 2.1)",
        expected={
            "rie": {"body_keys": ["functionName", "functionVersion", "handler"]},
            "sandbox": {"body_keys": ["accountId", "functionName", "functionVersion", "handler"]},
        },
    ),
    ("extension_lifecycle", "register_ok_body"): IntendedDifference(
        reason="see register_ok (accountId)",
        expected={
            name: {"functionName": FUNCTION_NAME, "functionVersion": "$LATEST", "handler": "app.handler"}
            for name in PLATFORMS
        },
    ),
    ("init_error", "init_starts"): IntendedDifference(
        reason="after a failed Init both platforms run a second, phase-invoke Init within the same "
        "invoke (Lambda's suppressed init); the RIE only reports it and reuses the stored error, "
        "the sandbox really starts the runtime again, as Lambda does (its logs show the init "
        "error twice). Either way every invoke after an init error initialises again.",
        expected={"rie": (1, 2), "sandbox": (2, 3)},
        per_round=True,
    ),
    ("extension_lifecycle", "telemetry_subscribe"): IntendedDifference(
        reason="the classic RIE stubs the Telemetry API (202 Telemetry.NotSupported); the sandbox "
        'implements it and answers like Lambda: 200 with the JSON string "OK"',
        expected={
            "rie": {**api_error(202, "Telemetry.NotSupported", "Telemetry API is not supported")},
            "sandbox": {"status": 200, "body": '"OK"'},
        },
    ),
    ("extension_lifecycle", "telemetry_subscribe_missing_identifier"): IntendedDifference(
        reason="the RIE stub answers before looking at the identifier; Lambda (and the sandbox) "
        "reject a subscription without one",
        expected={
            "rie": {**api_error(202, "Telemetry.NotSupported", "Telemetry API is not supported")},
            "sandbox": api_error(
                403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header"
            ),
        },
    ),
    ("extension_lifecycle", "runtime_next"): IntendedDifference(
        reason="the RIE sends Lambda-Runtime-Trace-Id only for active tracing (its customer trace id), "
        "Lambda sends the invoke's trace header on every next, and awslambdaric copies it to "
        "_X_AMZN_TRACE_ID; the sandbox follows Lambda",
        expected={
            "rie": {"lambda_headers": RUNTIME_NEXT_HEADERS},
            "sandbox": {"lambda_headers": sorted([*RUNTIME_NEXT_HEADERS, "lambda-runtime-trace-id"])},
        },
        compare_across=True,
    ),
    ("extension_lifecycle", "runtime_next_trace_id"): IntendedDifference(
        reason="see runtime_next",
        expected={"rie": None, "sandbox": TRACE_ID},
    ),
}
for _number in (1, 2):
    INTENDED_DIFFERENCES[("echo_runtime", f"round{_number}_values")] = IntendedDifference(
        reason="see extension_lifecycle runtime_next (the trace header)",
        expected={"rie": {"trace_id": None}, "sandbox": {"trace_id": TRACE_ID}},
    )


# -- running ---------------------------------------------------------------------------

_results: dict[tuple[str, str], list[RoundResult] | Exception] = {}


def scenario_results(platform_name: str, scenario_name: str) -> list[RoundResult]:
    """Run a scenario once per platform and module; later tests reuse the result (or error)."""
    if platform_name == "rie":
        skip_unless_rie_can_run()
    key = (platform_name, scenario_name)
    if key not in _results:
        try:
            _results[key] = run_scenario(PLATFORMS[platform_name](), SCENARIOS[scenario_name])
        except Exception as error:
            _results[key] = error
    result = _results[key]
    if isinstance(result, Exception):
        raise result
    return result


def run_scenario(platform: Platform, scenario: Scenario) -> list[RoundResult]:
    spec = probe_function(
        scenario.probe, function_name=FUNCTION_NAME, timeout_s=scenario.timeout_s, env=dict(scenario.env)
    )
    results = []
    with platform:
        platform.start(spec)
        for round_ in scenario.rounds:
            platform.clear_observations()
            invocation = platform.invoke(round_.payload, trace_id=TRACE_ID)
            observations = derive(platform.read_observations())
            results.append(RoundResult(invocation, observations, platform.output()[-3000:]))
    return results


def derive(observations: dict[str, Any]) -> dict[str, Any]:
    """Add the comparable views of each answer: Lambda headers, ids masked."""
    derived: dict[str, Any] = {}
    for step, value in observations.items():
        if isinstance(value, dict) and "header_names" in value:
            value = {**value, "lambda_headers": [n for n in value["header_names"] if n.startswith("lambda-")]}
            if "errorMessage" in value:
                value["errorMessage"] = mask_ids(value["errorMessage"])
        derived[step] = value
    if "runtime_next_request_id" in observations:
        derived["extension_and_runtime_request_ids_match"] = observations.get(
            "extension_invoke_event_request_id"
        ) == observations.get("runtime_next_request_id")
    return derived


def mask_ids(text: Any) -> Any:
    return UUID.sub("<id>", text) if isinstance(text, str) else text


def project(observed: Any, expected: Any) -> Any:
    """The part of an observation that an expectation talks about."""
    if isinstance(expected, dict) and isinstance(observed, dict):
        return {key: observed.get(key, "<missing>") for key in expected}
    return observed


def comparable(observed: Any) -> Any:
    """A step as compared across platforms: no transport headers, no run-specific ids.

    ``Lambda-Runtime-Trace-Id`` is left out too: only the sandbox sends it on every
    ``next`` (see the ``runtime_next`` entry of INTENDED_DIFFERENCES, which pins it).
    """
    if isinstance(observed, dict):
        view = {k: mask_ids(v) for k, v in observed.items() if k != "header_names"}
        if "lambda_headers" in view:
            view["lambda_headers"] = [n for n in view["lambda_headers"] if n != "lambda-runtime-trace-id"]
        return view
    return mask_ids(observed)


def invocation_view(invocation: Invocation, expected: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {"status_code": invocation.status_code}
    text = invocation.body.decode(errors="replace")
    if "body" in expected:
        view["body"] = text
    if "json" in expected:
        parsed = invocation.json
        view["json"] = {k: mask_ids(v) for k, v in parsed.items()} if isinstance(parsed, dict) else parsed
    if "body_contains" in expected:
        view["body_contains"] = expected["body_contains"] if expected["body_contains"] in text else text
    return view


# -- tests -----------------------------------------------------------------------------


def step_cases() -> list[Any]:
    cases = []
    for scenario_name, scenario in SCENARIOS.items():
        named_in_rounds = {step for round_ in scenario.rounds for step in round_.steps}
        only_intended = [
            step
            for (name, step) in INTENDED_DIFFERENCES
            if name == scenario_name and step not in named_in_rounds
        ]
        for index, round_ in enumerate(scenario.rounds):
            steps = [*round_.steps, *(only_intended if index == 0 else [])]
            for step in steps:
                cases.append(pytest.param(scenario_name, index, step, id=f"{scenario_name}-{index}-{step}"))
    return cases


def expected_step(platform_name: str, scenario_name: str, round_index: int, step: str) -> Any:
    expected = SCENARIOS[scenario_name].rounds[round_index].steps.get(step)
    difference = INTENDED_DIFFERENCES.get((scenario_name, step))
    if difference is None:
        return expected
    specific = difference.expected[platform_name]
    if difference.per_round:
        specific = specific[round_index]
    if isinstance(expected, dict) and isinstance(specific, dict):
        return {**expected, **specific}
    return specific


@pytest.mark.parametrize("platform_name", list(PLATFORMS))
@pytest.mark.parametrize(("scenario_name", "round_index", "step"), step_cases())
def test_step_matches_expectation(
    platform_name: str, scenario_name: str, round_index: int, step: str
) -> None:
    result = scenario_results(platform_name, scenario_name)[round_index]
    observed = result.observations.get(step, "<not observed>")
    expected = expected_step(platform_name, scenario_name, round_index, step)
    assert project(observed, expected) == expected, (
        f"{platform_name}: full observation {observed}\nplatform output:\n{result.platform_output}"
    )


@pytest.mark.parametrize("platform_name", list(PLATFORMS))
@pytest.mark.parametrize(
    ("scenario_name", "round_index"),
    [
        pytest.param(name, index, id=f"{name}-{index}")
        for name, scenario in SCENARIOS.items()
        for index in range(len(scenario.rounds))
    ],
)
def test_invoker_sees_expected_result(platform_name: str, scenario_name: str, round_index: int) -> None:
    results = scenario_results(platform_name, scenario_name)
    expected = SCENARIOS[scenario_name].rounds[round_index].invocation
    invocation = results[round_index].invocation
    assert invocation_view(invocation, expected) == expected


@pytest.mark.parametrize("scenario_name", list(SCENARIOS))
def test_platforms_agree(scenario_name: str) -> None:
    """Everything observed, not just what the expectations name, is the same on both."""
    reference = scenario_results("rie", scenario_name)
    candidate = scenario_results("sandbox", scenario_name)
    mismatches = {}
    for index, (rie_round, sandbox_round) in enumerate(zip(reference, candidate, strict=True)):
        steps = set(rie_round.observations) | set(sandbox_round.observations)
        for step in sorted(steps):
            difference = INTENDED_DIFFERENCES.get((scenario_name, step))
            if difference is not None and not difference.compare_across:
                continue
            rie_view = comparable(rie_round.observations.get(step, "<not observed>"))
            sandbox_view = comparable(sandbox_round.observations.get(step, "<not observed>"))
            if rie_view != sandbox_view:
                mismatches[f"round {index} {step}"] = {"rie": rie_view, "sandbox": sandbox_view}
        if rie_round.invocation.status_code != sandbox_round.invocation.status_code:
            mismatches[f"round {index} invoke status"] = {
                "rie": rie_round.invocation.status_code,
                "sandbox": sandbox_round.invocation.status_code,
            }
    assert not mismatches, mismatches


# -- platform.initStart against the RIE's Managed Instances stream ------------------------
# The classic RIE stubs the Telemetry API; its Managed Instances mode (RIE-LMI) streams
# real records. Both platforms run examples/hello through the wrapper with the file
# exporter, so each initStart is read exactly as a subscriber received it.

# Values that are the platform's own: the init type (RIE-LMI's mode is
# lambda-managed-instances, the sandbox's on-demand), the runtime version and its ARN
# (RIE-LMI sends ""), the instance id (RIE-LMI sends the version, Lambda the log stream).
INIT_START_OWN_VALUES = ("initializationType", "runtimeVersion", "runtimeVersionArn", "instanceId")


def exported_init_start(platform: Platform, task_root: Path, layer_dir: Path) -> dict[str, Any]:
    platform.start(
        FunctionUnderTest(
            task_root=task_root,
            layer_dir=layer_dir,
            use_wrapper=True,
            function_name=FUNCTION_NAME,
            timeout_s=5.0,
            env={"LAMBDA_WRAPPER_EXPORTERS": "file"},
            max_concurrency=1 if isinstance(platform, RiePlatform) else None,
        )
    )
    assert invoke_when_idle(platform, b"{}").status_code == 200, platform.output()
    # Shut down as Lambda does, so the extension's last flush writes everything.
    if isinstance(platform, RiePlatform):
        platform.terminate(timeout_s=10.0)
    else:
        platform.stop()
    export = platform.tmp_dir / EXPORT_FILE
    assert export.is_file(), platform.output()[-3000:]
    starts = [r["record"] for r in read_records(export) if r["type"] == "platform.initStart"]
    assert starts, platform.output()[-3000:]
    return starts[0]


def test_init_start_carries_the_fields_of_the_rie_managed_instances_stream(
    open_platform: Callable[[str], Platform], layer_dir: Path, tmp_path: Path
) -> None:
    task_root = tmp_path / "task"
    shutil.copytree(HELLO_DIR, task_root, ignore=shutil.ignore_patterns("__pycache__"))
    rie = exported_init_start(open_platform("rie"), task_root, layer_dir)
    sandbox = exported_init_start(open_platform("sandbox"), task_root, layer_dir)
    assert sorted(sandbox) == sorted(rie), {"rie": rie, "sandbox": sandbox}
    assert {k: type(v).__name__ for k, v in sandbox.items()} == {k: type(v).__name__ for k, v in rie.items()}
    shared = [key for key in rie if key not in INIT_START_OWN_VALUES]
    assert {k: sandbox[k] for k in shared} == {k: rie[k] for k in shared}
    assert re.fullmatch(r"arn:aws:lambda:[a-z0-9-]+::runtime:[0-9a-f]{64}", sandbox["runtimeVersionArn"])


# -- Telemetry API error paths against RIE-LMI ---------------------------------------------
# The classic RIE answers every subscription 202 "not supported"; its Managed Instances
# mode implements the API, so the probe (a handler module there, see its docstring) runs
# on that mode. Compared: status and errorType of every step (so the order in which a
# request's problems are checked), and the message wherever RAPID's text is not its
# JSON-schema validator's. For schema violations RIE-LMI writes its error document
# without escaping the validator's quotes (not JSON), so there only the status is
# compared; the sandbox answers the documented 400 ValidationError document.
TELEMETRY_SCHEMA_STEPS = (
    "subscribe_invalid_type",
    "subscribe_no_destination",
    "subscribe_bad_schema_version",
)
TELEMETRY_INTENDED = {
    "subscribe_after_init": "the sandbox keeps the message captured on Lambda ('... is closed already'); "
    "RIE-LMI says '... is closed'",
}


def telemetry_error_steps(platform: Platform) -> dict[str, Any]:
    platform.start(
        FunctionUnderTest(
            task_root=PROBES_DIR,
            handler="telemetry_errors.handler",
            function_name=FUNCTION_NAME,
            max_concurrency=1 if isinstance(platform, RiePlatform) else None,
        )
    )
    invocation = invoke_when_idle(platform, b"{}")
    assert invocation.status_code == 200, platform.output()[-3000:]
    observations = platform.read_observations()
    assert observations.get("complete"), platform.output()[-3000:]
    return derive(observations)


def test_telemetry_api_errors_match_rie_managed_instances(open_platform: Callable[[str], Platform]) -> None:
    rie = telemetry_error_steps(open_platform("rie"))
    sandbox = telemetry_error_steps(open_platform("sandbox"))
    assert sorted(rie) == sorted(sandbox)
    mismatches = {}
    for step in sorted(rie):
        if not isinstance(rie[step], dict):
            continue
        keys = ["status"] if step in TELEMETRY_SCHEMA_STEPS else ["status", "errorType"]
        if step not in TELEMETRY_SCHEMA_STEPS and step not in TELEMETRY_INTENDED:
            keys.append("errorMessage")
        views = {
            name: {k: mask_ids(seen[step].get(k)) for k in keys}
            for name, seen in (("rie", rie), ("sandbox", sandbox))
        }
        if views["rie"] != views["sandbox"]:
            mismatches[step] = views
    assert not mismatches, mismatches
