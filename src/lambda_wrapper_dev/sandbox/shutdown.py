"""The Shutdown phase of one environment (contract 4.1, 4.2; RAPID ``shutdown.go``).

- No extension registered: the runtime is SIGKILLed at once.
- Otherwise SIGTERM to the runtime's process group, and SIGKILL after its share of
  the budget: 500 ms with only internal extensions; with external ones (2,000 ms
  in all) 300 ms, or 500 ms when an internal extension is registered too.
- Then external extensions subscribed to SHUTDOWN get ``{eventType, deadlineMs,
  shutdownReason}`` (reason lowercase: ``spindown``, ``timeout``, ``failure``); the
  others are SIGKILLed. Whatever still runs at the 2,000 ms deadline is SIGKILLed.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Mapping

from .process import ManagedProcess
from .state import AgentEvent, AgentStates, EnvironmentState

TOTAL_BUDGET_S = 2.0
INTERNAL_ONLY_BUDGET_S = 0.5
RUNTIME_SHARE_WITH_EXTERNAL_S = 0.3
RUNTIME_SHARE_WITH_BOTH_S = 0.5


def shutdown_event(deadline_ms: int, reason: str) -> bytes:
    return json.dumps(
        {"eventType": "SHUTDOWN", "deadlineMs": deadline_ms, "shutdownReason": reason}, separators=(",", ":")
    ).encode()


def shut_down(
    env: EnvironmentState,
    runtime: ManagedProcess | None,
    extensions: Mapping[str, ManagedProcess],
    reason: str,
) -> None:
    started, started_wall = time.monotonic(), time.time()
    with env.cond:
        registered = env.registered_agents()
    has_internal = any(not agent.external for agent in registered)
    has_external = any(agent.external for agent in registered)
    if runtime is not None:
        if not registered:
            runtime.kill()
        else:
            runtime.signal_group(signal.SIGTERM)
            grace = (
                (RUNTIME_SHARE_WITH_BOTH_S if has_internal else RUNTIME_SHARE_WITH_EXTERNAL_S)
                if has_external
                else INTERNAL_ONLY_BUDGET_S
            )
            if not runtime.wait_exit(grace):
                runtime.kill()
    body = shutdown_event(int((started_wall + TOTAL_BUDGET_S) * 1000), reason)
    with env.cond:
        for agent in env.agents:
            process = extensions.get(agent.name) if agent.external else None
            if process is None or process.returncode is not None:
                continue
            if "SHUTDOWN" in agent.events and agent.state in (
                AgentStates.READY,
                AgentStates.RUNNING,
                AgentStates.REGISTERED,
            ):
                env.deliver(agent, AgentEvent(body))
            else:
                process.kill()
        env.cond.notify_all()
    deadline = started + TOTAL_BUDGET_S
    for process in extensions.values():
        if not process.wait_exit(max(0.0, deadline - time.monotonic())):
            process.kill()
    if runtime is not None:
        runtime.kill()  # anything left in its group (a daemonised child) goes too
    for process in extensions.values():
        process.kill()
