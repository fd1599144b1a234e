"""The handler Lambda calls when the wrapper is on (``_HANDLER`` points here).

awslambdaric imports this module during Init, before its first ``/next``: the
moment an internal extension must register. Importing it loads the user's handler
with awslambdaric's own error semantics and exposes the wrapped ``handler``.
"""

import time

_started_at = time.perf_counter()

from . import start  # noqa: E402

handler = start(_started_at)
