"""What a block of code leaves behind in reference cycles (freed only by a full GC).

Cycles matter inside someone else's Lambda function: their memory is held until the
next full collection, so a cycle made on every flush or invocation shows up as RSS
that climbs and stays (see docs/reliability.md, the soak).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_garbage() -> Iterator[list[object]]:
    """Yield a list that, after the block, holds every object the block left in cycles."""
    found: list[object] = []
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield found
    finally:
        flags = gc.get_debug()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found.extend(gc.garbage)
            gc.garbage.clear()
        finally:
            gc.set_debug(flags)
            if enabled:
                gc.enable()


def type_names(objects: list[object]) -> set[str]:
    return {type(item).__name__ for item in objects}
