"""Structured logs (``LAMBDA_WRAPPER_LOGS=structlog``): stdlib logging rendered as JSON.

awslambdaric installs its own handler on the root logger before it imports the
handler module (that is, before us). We keep that handler, because it owns the
output path (stdout, or the platform's framed telemetry fd with a frame type per
level), and only give it our formatter: structlog's ``ProcessorFormatter`` with a
chain that renders one flat JSON object per record. Field names follow Lambda's own
JSON log format (``timestamp``, ``level``, ``message``, ``logger``, ``requestId``,
``errorType``/``errorMessage``/``stackTrace``) plus ``functionName``,
``functionVersion``, ``coldStart`` and ``xrayTraceId``. With
``AWS_LAMBDA_LOG_FORMAT=JSON`` our object *replaces* awslambdaric's, with the JSON
frame type, so nothing is encoded twice. ``print`` is left alone.

Importing structlog costs about 50 ms (it loads asyncio, dataclasses, inspect), so
this module is imported only when the feature is on.
"""

from __future__ import annotations

import logging
import sys

import structlog

from . import CURRENT, iso_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

LAMBDA_HANDLER_CLASSES = ("LambdaLoggerHandler", "LambdaLoggerHandlerWithFrameType")
# What a LogRecord carries on its own (plus awslambdaric's additions): the rest are
# the caller's ``extra=`` fields, which we render like awslambdaric's JSON format does.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "aws_request_id",
    "tenant_id",
    "_frame_type",
}

installed = False


def install(json_format: bool, level_name: str | None) -> None:
    """Format the function's logging through structlog; route structlog through logging."""
    global installed
    formatter = LambdaJsonFormatter(_json_frame_types() if json_format else None)
    root = logging.getLogger()
    handlers = [h for h in root.handlers if type(h).__name__ in LAMBDA_HANDLER_CLASSES]
    if not handlers:
        # Not under awslambdaric (a local run): write the same lines to stdout.
        stream = logging.StreamHandler(sys.stdout)
        stream.terminator = ""  # the formatter ends each line itself, as awslambdaric needs
        root.addHandler(stream)
        handlers = [stream]
    for handler in handlers:
        handler.setFormatter(formatter)
    level = lambda_log_level(level_name)
    if level is not None:
        root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    installed = True


def lambda_log_level(name: str | None) -> int | None:
    """The level ``AWS_LAMBDA_LOG_LEVEL`` names, read the way awslambdaric reads it."""
    if not name:
        return None
    name = name.strip().upper()
    name = "DEBUG" if name == "TRACE" else name
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else None


class LambdaJsonFormatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, frame_types: dict[int, bytes] | None) -> None:
        super().__init__(
            foreign_pre_chain=[structlog.contextvars.merge_contextvars, add_extra_fields],
            processors=[
                lambda_fields,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                exception_fields,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
        self.frame_types = frame_types

    def format(self, record: logging.LogRecord) -> str:
        if self.frame_types is not None:
            # awslambdaric's handler frames each line with the type its formatter
            # chose; JSON frames tell the platform the line is a JSON object.
            record._frame_type = self.frame_types.get(level_bucket(record.levelno))
        return super().format(record) + "\n"


def level_bucket(levelno: int) -> int:
    """The level awslambdaric reports for ``levelno`` (custom levels round down)."""
    return min(50, max(0, levelno)) // 10 * 10


def add_extra_fields(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    record = event["_record"]
    for key, value in record.__dict__.items():
        if key not in _RECORD_ATTRIBUTES and key not in event:
            event[key] = value
    if isinstance(record.msg, dict) and not record.args:
        event["event"] = record.msg  # a dict message stays an object, as in Lambda's JSON format
    return event


def lambda_fields(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Lambda's JSON log fields first, then the invocation context, then the caller's fields."""
    record = event["_record"]
    fields: EventDict = {
        "timestamp": iso_time(record.created),
        "level": logging.getLevelName(level_bucket(record.levelno)),
        "message": event.pop("event", None),
        "logger": record.name,
    }
    fields.update(CURRENT.fields())
    if "requestId" not in fields and getattr(record, "aws_request_id", None):
        fields["requestId"] = record.aws_request_id
    tenant = getattr(record, "tenant_id", None)
    if tenant is not None:
        fields["tenantId"] = tenant
    fields.update(event)
    return fields


def exception_fields(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """``exc_info`` as awslambdaric's JSON format shows it: type, message, stack trace."""
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        import traceback

        event["errorType"] = exc_info[0].__name__
        event["errorMessage"] = str(exc_info[1])
        event["stackTrace"] = traceback.format_tb(exc_info[2])
    stack_info = event.pop("stack_info", None)
    if stack_info:
        event["stackInfo"] = stack_info
    return event


def _json_frame_types() -> dict[int, bytes] | None:
    log_utils = sys.modules.get("awslambdaric.lambda_runtime_log_utils")
    frame_types = getattr(log_utils, "_JSON_FRAME_TYPES", None)
    return dict(frame_types) if isinstance(frame_types, dict) else None
