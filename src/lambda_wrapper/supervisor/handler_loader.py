"""Load the user's handler exactly as awslambdaric would.

Every init failure (missing module, syntax error, exception at import, missing
function, malformed handler name) must reach the caller with the same ``errorType``
and ``errorMessage`` as without the wrapper. The surest way is to let awslambdaric's
own loader do it: we are being imported *by* that loader, so it is already loaded,
and its ``FaultException`` passes through our import unchanged.
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
    if loader is not None:
        return loader(name)
    return _load_without_awslambdaric(name)


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
