"""The wrapper's environment tweaks, as the Python side sees them (``docs/tweaks.md``).

The wrapper script applies them before Python starts (it cannot import this module)
and lists what it applied in ``Handover.TWEAKS_APPLIED``. This table names, for
each tweak, its switch in ``variables.py`` and the variable it sets; a test holds the
script, this table and the settings' defaults to each other.
"""

from __future__ import annotations

from ..settings import Handover

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..settings import Settings

class Tweak:
    __slots__ = ("key", "value", "variable")

    def __init__(self, key: str, variable: str, value: str) -> None:
        self.key = key
        self.variable = variable
        self.value = value

    @property
    def switch(self) -> str:
        return f"LAMBDA_WRAPPER_TWEAK_{self.key.upper()}"

    @property
    def attribute(self) -> str:
        return f"tweak_{self.key}"


TWEAKS = (
    Tweak("faulthandler", "PYTHONFAULTHANDLER", "1"),
    Tweak("dont_write_bytecode", "PYTHONDONTWRITEBYTECODE", "1"),
    Tweak("malloc_arena_max", "MALLOC_ARENA_MAX", "2"),
    Tweak("no_debug_ranges", "PYTHONNODEBUGRANGES", "1"),
)


def applied(environ: Mapping[str, str]) -> list[str]:
    """Keys of the tweaks the wrapper applied to this process."""
    return [key for key in environ.get(Handover.TWEAKS_APPLIED, "").split(",") if key]


def status(settings: Settings, environ: Mapping[str, str]) -> list[dict[str, object]]:
    """One row per tweak: its switch, and what the variable holds and why."""
    done = applied(environ)
    rows: list[dict[str, object]] = []
    for tweak in TWEAKS:
        value = environ.get(tweak.variable)
        if tweak.key in done:
            origin = "set by the wrapper"
        elif value is not None:
            origin = "set by the user (the wrapper never overrides it)"
        elif environ.get(Handover.ROOT) is None:
            origin = "not set (the wrapper did not run in this environment)"
        else:
            origin = "not set"
        rows.append(
            {
                "tweak": tweak.key,
                "switch": tweak.switch,
                "enabled": getattr(settings, tweak.attribute),
                "variable": tweak.variable,
                "value": value,
                "origin": origin,
            }
        )
    return rows
