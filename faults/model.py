"""What one scenario reports, and the two forms of the suite."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

PASS = "pass"
FAIL = "FAIL"
# The sandbox cannot reproduce the fault yet (e.g. no memory limit): the short form
# records it and carries on; the full form counts it as a failure.
UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Form:
    """How much of each scenario to run. ``short`` must fit ``make test``."""

    name: str
    baseline_invokes: int
    outage_invokes: int
    recovery_timeout_s: float
    spool_invokes: int
    listener_live_examples: int
    decoder_examples: int
    atheris_runs: int
    flood_connections: int
    init_timeout_s: float
    init_sleep_s: float
    per_variable_garbage: bool
    soak_invokes: int
    soak_warmup: int
    soak_sample_every: int
    # The default exporter and a remote one: a remote exporter at 7 % of a CPU runs
    # out of flush budget and sees failures, the paths where memory used to pile up.
    soak_exporters: str = "emf,otlp"

    @property
    def short(self) -> bool:
        return self.name == "short"


SHORT = Form(
    name="short",
    baseline_invokes=8,
    outage_invokes=2,
    recovery_timeout_s=15.0,
    spool_invokes=12,
    listener_live_examples=40,
    decoder_examples=300,
    atheris_runs=3000,
    flood_connections=1000,
    # Init longer than the init timeout, scaled down: the mechanism is the same.
    init_timeout_s=1.0,
    init_sleep_s=1.5,
    per_variable_garbage=False,
    # The warm-up outlasts the climb to the high-water mark (see faults.scenarios.soak),
    # so what grows after it is growth, not a bounded backlog reaching a new peak.
    soak_invokes=1500,
    soak_warmup=1000,
    soak_sample_every=25,
)
FULL = Form(
    name="full",
    baseline_invokes=30,
    outage_invokes=5,
    recovery_timeout_s=90.0,
    spool_invokes=40,
    listener_live_examples=400,
    decoder_examples=5000,
    atheris_runs=100_000,
    flood_connections=1000,
    init_timeout_s=10.0,
    init_sleep_s=11.0,
    per_variable_garbage=True,
    soak_invokes=5000,
    soak_warmup=1000,
    soak_sample_every=100,
)


@dataclass
class Result:
    """One row of docs/reliability.md, with the evidence behind its verdict."""

    scenario: str
    family: str
    saw: str = ""
    delivered: str = ""
    lost: str = ""
    added_ms: float | None = None
    peak_mb: int | None = None
    checks: list[tuple[str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unsupported: str | None = None  # why the sandbox could not reproduce the fault
    # What of this row was measured against the same function run without the wrapper
    # in the same scenario ("" when nothing was: the row is judged on fixed bounds).
    compared_with_bare: str = ""
    seconds: float = 0.0

    def check(self, description: str, ok: bool) -> bool:
        self.checks.append((description, bool(ok)))
        return bool(ok)

    @property
    def verdict(self) -> str:
        if self.unsupported is not None:
            return UNSUPPORTED
        return PASS if self.checks and all(ok for _, ok in self.checks) else FAIL

    @property
    def failed_checks(self) -> list[str]:
        return [description for description, ok in self.checks if not ok]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
