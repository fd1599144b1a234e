"""What the platform knows about one execution environment, shared by the API
handlers (server threads) and the lifecycle (the invoking thread).

All fields are guarded by ``EnvironmentState.cond``. Waiting code uses
``cond.wait_for`` with a predicate, and everything that changes state notifies,
so there is exactly one lock and no ordering to get wrong. When an environment is
torn down its state is ``closed``; API calls still blocked in it then return
without answering (their processes are being killed).

Runtime and extension state names are RAPID's, because they appear in the error
messages the APIs return (``State transition from X to Y failed ...``).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

MAX_EXTENSIONS = 10


class RuntimeStates:
    STARTED = "Started"
    INIT_ERROR = "InitError"
    READY = "Ready"
    RUNNING = "Running"
    INVOCATION_RESPONSE = "InvocationResponse"
    INVOCATION_ERROR_RESPONSE = "InvocationErrorResponse"
    RESPONSE_SENT = "RuntimeResponseSentState"


class AgentStates:
    STARTED = "Started"
    REGISTERED = "Registered"
    READY = "Ready"
    RUNNING = "Running"
    INIT_ERROR = "InitError"
    EXIT_ERROR = "ExitError"
    EXITED = "Exited"
    LAUNCH_ERROR = "LaunchError"


@dataclass
class AgentEvent:
    body: bytes
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    content_type: str = "application/json"


@dataclass
class Agent:
    name: str
    external: bool
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = AgentStates.STARTED
    events: list[str] = field(default_factory=list)
    inbox: AgentEvent | None = None
    error_type: str | None = None
    subscribed_api: str | None = None  # "telemetry" or "logs"
    exited: bool = False
    # What its pending /event/next waits on: a condition of its own on the environment's
    # lock (``EnvironmentState.agent_wakeup``), notified only when its inbox fills or the
    # environment closes.
    wakeup: threading.Condition | None = field(default=None, repr=False, compare=False)

    @property
    def waiting_idle(self) -> bool:
        """Called /next and has nothing left to pick up."""
        return self.state == AgentStates.READY and self.inbox is None


@dataclass(frozen=True)
class ResponseTiming:
    arrived: float  # monotonic: the runtime's /response (or /error) request came in
    arrived_wall: float
    read: float  # monotonic: its body was fully read

    @property
    def read_wall(self) -> float:
        return self.arrived_wall + (self.read - self.arrived)


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    trace_id: str | None
    client_context: str | None
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    delivered: bool = False
    # Filled in by the runtime's answer:
    outcome: str | None = None  # "response" | "error"
    body: bytes = b""
    error_type: str | None = None
    timing: ResponseTiming | None = None


@dataclass
class InitFailure:
    error_type: str
    body: bytes


class EnvironmentState:
    def __init__(self, function_name: str, handler: str, external_names: list[str]) -> None:
        # One lock for all the state. ``cond`` wakes every waiter on any change; an agent's
        # pending /event/next waits on its own ``wakeup`` on the same lock, since RAPID's
        # wait for an event costs nothing and a Python thread woken by every change of an
        # invocation would compete with the runtime's for this process's CPU and GIL.
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.function_name = function_name
        self.handler = handler
        self.closed = False
        self.registration_open = True
        self.subscriptions_open = True
        self.agents: list[Agent] = [Agent(name, external=True) for name in external_names]
        self.runtime_state = RuntimeStates.STARTED
        self.runtime_exit_code: int | None = None
        self.runtime_out_of_memory = False  # the kernel's OOM killer ended it (cgroups only)
        self.runtime_started = False
        self.init_error: InitFailure | None = None
        self.invocation: Invocation | None = None
        self.crashed_extension: str | None = None

    # Lookups (call with cond held) ------------------------------------------------

    def agent_by_id(self, agent_id: str) -> Agent | None:
        return next(
            (agent for agent in self.agents if agent.id == agent_id and agent.state != AgentStates.STARTED),
            None,
        )

    def external_agent(self, name: str) -> Agent | None:
        return next((agent for agent in self.agents if agent.external and agent.name == name), None)

    def registered_agents(self) -> list[Agent]:
        return [agent for agent in self.agents if agent.state != AgentStates.STARTED]

    def agent_failure(self) -> Agent | None:
        return next(
            (
                agent
                for agent in self.agents
                if agent.state in (AgentStates.INIT_ERROR, AgentStates.EXIT_ERROR, AgentStates.LAUNCH_ERROR)
                or (agent.external and agent.exited)
            ),
            None,
        )

    def agent_wakeup(self, agent: Agent) -> threading.Condition:
        """The condition ``agent``'s pending /event/next waits on (call with cond held)."""
        if agent.wakeup is None:
            agent.wakeup = threading.Condition(self.lock)
        return agent.wakeup

    def deliver(self, agent: Agent, event: AgentEvent) -> None:
        """Put ``event`` in ``agent``'s inbox and wake its /event/next (call with cond held)."""
        agent.inbox = event
        if agent.wakeup is not None:
            agent.wakeup.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            for agent in self.agents:
                if agent.wakeup is not None:
                    agent.wakeup.notify_all()
