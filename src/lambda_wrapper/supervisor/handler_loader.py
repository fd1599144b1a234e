"""Load the user's handler exactly as awslambdaric would.

Every init failure (missing module, syntax error, exception at import, missing
function, malformed handler name) must reach the caller with the same ``errorType``
and ``errorMessage`` as without the wrapper. The surest way is to let awslambdaric's
own loader do it: we are being imported *by* that loader, so it is already loaded,
and its ``FaultException`` passes through our import unchanged.

An exception raised by the user's module itself must also reach the caller with the
bare runtime's ``stackTrace``: awslambdaric builds it from the traceback, which would
show our frames (entry, core, this loader) and a second import chain. So such an
exception is turned into the error document awslambdaric would have built from the
traceback below our frames, carried by a ``FaultException``, which awslambdaric
reports as it stands.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from typing import Any

    from .bootstrap import Handler


def load_user_handler(name: str | None) -> Handler:
    ric = sys.modules.get("awslambdaric.bootstrap")
    if name is None or not name.strip():
        raise _fault(ric, "MALFORMED_HANDLER_NAME",
                     "Bad handler '': LAMBDA_WRAPPER_HANDLER is not set (the wrapper stores the original "
                     "_HANDLER there)")
    loader = getattr(ric, "_get_handler", None)
    if loader is None:
        return _load_without_awslambdaric(name)
    try:
        return loader(name)
    except Exception as error:
        fault = _fault_as_reported_without_us(ric, error)
        if fault is None:
            raise
        raise fault from None


def _fault_as_reported_without_us(ric: Any, error: Exception) -> Exception | None:
    """``error`` as a ``FaultException`` carrying awslambdaric's own error document.

    The document is built by awslambdaric's ``build_fault_result`` from the traceback
    minus this module's frames: what remains starts at awslambdaric's loader, exactly
    where the bare runtime's traceback starts, and awslambdaric drops those frames of
    its own in both cases. None when there is nothing to rebuild (awslambdaric's own
    faults already carry their document) or awslambdaric cannot build it.
    """
    fault_class = getattr(sys.modules.get("awslambdaric.lambda_runtime_exception"), "FaultException", None)
    build_fault_result = getattr(ric, "build_fault_result", None)
    if fault_class is None or build_fault_result is None or isinstance(error, fault_class):
        return None
    below_us = error.__traceback__
    while below_us is not None and below_us.tb_frame.f_globals.get("__name__") == __name__:
        below_us = below_us.tb_next
    document = build_fault_result((type(error), error, below_us), None)
    return fault_class(document["errorType"], document["errorMessage"], document["stackTrace"])


def _load_without_awslambdaric(name: str) -> Handler:
    # Outside awslambdaric (another runtime client, or a unit test) keep its messages.
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as exc:
        raise _fault(None, "MALFORMED_HANDLER_NAME", f"Bad handler '{name}': {exc}") from None
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _fault(None, "IMPORT_MODULE_ERROR", f"Unable to import module '{module_name}': {exc}") from None
    except SyntaxError as exc:
        message = f"Syntax error in module '{module_name}': {exc}"
        raise _fault(None, "USER_CODE_SYNTAX_ERROR", message) from None
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise _fault(None, "HANDLER_NOT_FOUND",
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


def _fault(ric: Any, kind: str, message: str) -> Exception:
    fault_module = sys.modules.get("awslambdaric.lambda_runtime_exception")
    fault_class = getattr(fault_module, "FaultException", None)
    if fault_class is not None:
        return fault_class(getattr(fault_class, kind), message)
    return HandlerLoadError(_FALLBACK_TYPES[kind], message)
