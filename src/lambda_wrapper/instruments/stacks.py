"""A running thread's Python stack, as short readable lines (innermost last)."""

from __future__ import annotations

import sys

MAX_FRAMES = 50

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, FrameType


def thread_stack(thread_id: int, skip_through: CodeType | None = None) -> list[str] | None:
    """``["/var/task/app.py:12 in slow: time.sleep(10)", ...]`` or None if the thread is gone.

    Frames up to and including the one running ``skip_through`` (our handler
    wrapper) are left out: they are the runtime's, the same for every function.
    """
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return None
    return format_frames(_frames(frame, skip_through))


def _frames(frame: FrameType | None, skip_through: CodeType | None) -> list[FrameType]:
    frames: list[FrameType] = []
    while frame is not None:
        if frame.f_code is skip_through:
            break
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return frames[-MAX_FRAMES:]


def format_frames(frames: list[FrameType]) -> list[str]:
    import linecache  # loaded by traceback, which awslambdaric imports anyway

    lines = []
    for frame in frames:
        code = frame.f_code
        lineno = frame.f_lineno or 0
        source = linecache.getline(code.co_filename, lineno).strip()
        line = f"{code.co_filename}:{lineno} in {code.co_name}"
        lines.append(f"{line}: {source}" if source else line)
    return lines
