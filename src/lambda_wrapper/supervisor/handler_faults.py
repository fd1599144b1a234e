"""Why the user's handler could not be loaded, told as awslambdaric tells it.

The supervisor's handler loader (``load_user_handler``) lets awslambdaric's own loader
do the work; this module holds what it needs only when that fails, or where there is
no awslambdaric to load with: an Init that loads the handler never imports it.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from typing import Any

    from . import Handler

# The module whose frames stand between awslambdaric's loader and the user's module.
SUPERVISOR = __name__.rpartition(".")[0]


def fault_as_reported_without_us(ric: Any, error: Exception) -> Exception | None:
    """``error`` as a ``FaultException`` carrying awslambdaric's own error document.

    The document is built by awslambdaric's ``build_fault_result`` from the traceback
    minus the supervisor's frames: what remains starts at awslambdaric's loader, exactly
    where the bare runtime's traceback starts, and awslambdaric drops those frames of
    its own in both cases. None when there is nothing to rebuild (awslambdaric's own
    faults already carry their document) or awslambdaric cannot build it.
    """
    fault_class = getattr(sys.modules.get("awslambdaric.lambda_runtime_exception"), "FaultException", None)
    build_fault_result = getattr(ric, "build_fault_result", None)
    if fault_class is None or build_fault_result is None or isinstance(error, fault_class):
        return None
    below_us = error.__traceback__
    while below_us is not None and below_us.tb_frame.f_globals.get("__name__") == SUPERVISOR:
        below_us = below_us.tb_next
    document = build_fault_result((type(error), error, below_us), None)
    return fault_class(document["errorType"], document["errorMessage"], document["stackTrace"])


def load_without_awslambdaric(name: str) -> Handler:
    # Outside awslambdaric (another runtime client, or a unit test) keep its messages.
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as exc:
        raise fault(None, "MALFORMED_HANDLER_NAME", f"Bad handler '{name}': {exc}") from None
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise fault(None, "IMPORT_MODULE_ERROR", f"Unable to import module '{module_name}': {exc}") from None
    except SyntaxError as exc:
        message = f"Syntax error in module '{module_name}': {exc}"
        raise fault(None, "USER_CODE_SYNTAX_ERROR", message) from None
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise fault(None, "HANDLER_NOT_FOUND",
                    f"Handler '{function_name}' missing on module '{module_name}'") from None


_FALLBACK_TYPES = {
    "MALFORMED_HANDLER_NAME": "Runtime.MalformedHandlerName",
    "IMPORT_MODULE_ERROR": "Runtime.ImportModuleError",
    "USER_CODE_SYNTAX_ERROR": "Runtime.UserCodeSyntaxError",
    "HANDLER_NOT_FOUND": "Runtime.HandlerNotFound",
}


class HandlerLoadError(Exception):
    def __init__(self, exception_type: str, msg: str) -> None:
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = None


def fault(ric: Any, kind: str, message: str) -> Exception:
    fault_module = sys.modules.get("awslambdaric.lambda_runtime_exception")
    fault_class = getattr(fault_module, "FaultException", None)
    if fault_class is not None:
        return fault_class(getattr(fault_class, kind), message)
    return HandlerLoadError(_FALLBACK_TYPES[kind], message)
