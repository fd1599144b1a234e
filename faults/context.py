"""State shared by the scenarios of one run: paths, canaries, and every artefact.

Artefacts (function and extension output, doctor output) are kept so that the
secrets scenario, which runs last, can look for the canaries in everything the
other scenarios produced; function ``/tmp`` dirs all live under ``work_dir`` for
the same reason (spool files, the file exporter's output).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Form

FLUSH_BUDGET_MS = 100  # the product's default; outage scenarios hold it to this


@dataclass(frozen=True)
class Canaries:
    """Recognisable secret values, unique per run (a hit cannot be a stale file)."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def access_key(self) -> str:
        return f"AKIAFAULTSCANARY{self.suffix.upper()}"

    @property
    def secret_key(self) -> str:
        return f"faults-canary-secret-key-{self.suffix}"

    @property
    def session_token(self) -> str:
        return f"faults-canary-session-token-{self.suffix}"

    @property
    def otlp_header(self) -> str:
        return f"faults-canary-otlp-header-{self.suffix}"

    @property
    def http_header(self) -> str:
        return f"faults-canary-http-header-{self.suffix}"

    @property
    def event_field(self) -> str:
        return f"faults-canary-event-field-{self.suffix}"

    def values(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "OTEL_EXPORTER_OTLP_HEADERS": self.otlp_header,
            "LAMBDA_WRAPPER_HTTP_HEADERS": self.http_header,
            "event field": self.event_field,
        }

    def env(self) -> dict[str, str]:
        """Every secret-bearing variable set to its canary (headers matter only where an
        exporter that uses them is on)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{self.otlp_header}",
            "LAMBDA_WRAPPER_HTTP_HEADERS": f"x-api-key={self.http_header}",
        }


@dataclass
class SessionRecord:
    scenario: str
    wrapped: bool
    namespace_mode: bool
    warnings: list[str]
    write_violations: list[str]


@dataclass
class Context:
    form: Form
    layer_dir: Path
    work_dir: Path
    task_root: Path
    certs_dir: Path
    canaries: Canaries = field(default_factory=Canaries)
    # (where it came from, text): scanned for canaries at the end.
    artefacts: list[tuple[str, str]] = field(default_factory=list)
    sessions: list[SessionRecord] = field(default_factory=list)
    # Every receiver's canary findings: (receiver, where in the request, canary name).
    receiver_hits: list[tuple[str, str, str]] = field(default_factory=list)
    header_canaries_seen: set[str] = field(default_factory=set)
    bodies_scanned: int = 0
    baseline_ms: float | None = None
    # The rows so far (the suite's own list): the secrets scan reads them too.
    results: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count = field(default_factory=itertools.count)

    def new_tmp(self, scenario: str) -> Path:
        slug = "".join(c if c.isalnum() else "-" for c in scenario)[:40]
        path = self.work_dir / "tmp" / f"{next(self._counter):03d}-{slug}"
        path.mkdir(parents=True)
        return path

    def add_artefact(self, source: str, text: str) -> None:
        with self._lock:
            self.artefacts.append((source, text))

    def add_session(self, record: SessionRecord) -> None:
        with self._lock:
            self.sessions.append(record)

    def absorb(self, endpoint: Any) -> None:
        """Keep a closed endpoint's canary findings (``servers.Endpoint``)."""
        with self._lock:
            self.receiver_hits.extend((endpoint.name, path, name) for path, name in endpoint.body_hits)
            self.header_canaries_seen.update(endpoint.header_hits)
            self.bodies_scanned += len(endpoint.requests)
