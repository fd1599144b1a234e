"""What the Lambda environment says about the function, read once for every exporter."""

from __future__ import annotations

import os

from .. import aws

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping


class FunctionMetadata:
    """The function's identity; a field is None when the environment does not say.

    ``log_group`` and ``log_stream`` are absent under SnapStart (platform contract 5.1).
    """

    __slots__ = (
        "initialization_type",
        "log_group",
        "log_stream",
        "memory_mb",
        "name",
        "region",
        "runtime",
        "version",
    )

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.name = env.get(aws.FUNCTION_NAME) or None
        self.version = env.get(aws.FUNCTION_VERSION) or None
        self.region = env.get(aws.REGION) or env.get(aws.DEFAULT_REGION) or None
        memory = env.get(aws.FUNCTION_MEMORY_SIZE, "")
        self.memory_mb = int(memory) if memory.strip().isdigit() else None
        self.log_group = env.get(aws.LOG_GROUP_NAME) or None
        self.log_stream = env.get(aws.LOG_STREAM_NAME) or None
        self.runtime = env.get(aws.EXECUTION_ENV) or None
        self.initialization_type = env.get(aws.INITIALIZATION_TYPE) or None

    def as_dict(self) -> dict[str, object]:
        """The fields that are known, under the camelCase names of the platform's records."""
        fields = {
            "functionName": self.name,
            "functionVersion": self.version,
            "region": self.region,
            "memorySizeMB": self.memory_mb,
            "logGroupName": self.log_group,
            "logStreamName": self.log_stream,
            "runtime": self.runtime,
            "initializationType": self.initialization_type,
        }
        return {key: value for key, value in fields.items() if value is not None}
