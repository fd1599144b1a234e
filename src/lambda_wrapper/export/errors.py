"""What an exporter raises when a delivery fails."""

from __future__ import annotations


class ExportError(Exception):
    """A failed delivery. Messages must never contain header values or credentials."""

    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
