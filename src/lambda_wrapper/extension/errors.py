"""Errors raised when talking to the Lambda platform APIs."""

from __future__ import annotations


class PlatformError(Exception):
    """The platform answered with an error status (its ``errorType`` is kept)."""

    def __init__(self, operation: str, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{operation} failed: HTTP {status} {error_type}: {message}")
        self.operation = operation
        self.status = status
        self.error_type = error_type
        self.message = message

