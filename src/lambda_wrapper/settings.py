"""One typed settings object, read once from the environment.

Every ``LAMBDA_WRAPPER_*`` variable is declared here once, with its type, default,
accepted values and a one-line description. The same table renders the README's
environment-variable reference (``lambda-wrapper doctor --markdown``), so the docs
cannot drift from the code.

A bad value never takes the function down: the feature it belongs to is switched
off, one line names the variable, the value and what is accepted, and the function
runs. ``LAMBDA_WRAPPER_STRICT=true`` turns bad values into an init error instead,
for users who prefer to fail loudly in staging.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
EXPORTER_NAMES = ("emf", "otlp", "http", "file")
TELEMETRY_TYPES = ("platform", "function", "extension")
FLUSH_STRATEGIES = ("adaptive", "background")


class Problem:
    __slots__ = ("accepted", "feature", "name", "value")

    def __init__(self, name: str, value: str, accepted: str, feature: str) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        self.feature = feature

    def describe(self, secret: bool = False) -> str:
        shown = "<redacted>" if secret else repr(_clip(self.value))
        return f"{self.name}={shown} is invalid (accepted: {self.accepted}); {self.feature} is disabled"


class Setting:
    """The declaration of one environment variable."""

    __slots__ = ("accepted", "attribute", "default", "description", "feature", "name", "parse", "secret")

    def __init__(self, name: str, attribute: str, default: object, accepted: str, description: str,
                 parse: Callable[[str], object], feature: str, secret: bool = False) -> None:
        self.name = name
        self.attribute = attribute
        self.default = default
        self.accepted = accepted
        self.description = description
        self.parse = parse
        self.feature = feature
        self.secret = secret


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(raw)


def _int_between(low: int, high: int, forbidden: tuple[int, ...] = ()) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not low <= value <= high or value in forbidden:
            raise ValueError(raw)
        return value

    return parse


def _choices(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(raw)
        return value

    return parse


def _subset(options: tuple[str, ...], allow_empty: bool = False) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
        if (not items and not allow_empty) or any(item not in options for item in items):
            raise ValueError(raw)
        return items

    return parse


def _text(raw: str) -> str:
    if len(raw) > 4096:
        raise ValueError(raw)
    return raw


def _absolute_tmp_path(raw: str) -> str:
    # Lambda's only writable place is /tmp; refusing anything else here means a typo can
    # never make us try (and fail) to write into the read-only code or layer dirs.
    path = os.path.normpath(raw.strip())
    tmp = os.path.normpath(os.environ.get("TMPDIR") or "/tmp")
    if not os.path.isabs(path) or not (path + "/").startswith(tmp + "/") or path == tmp:
        raise ValueError(raw)
    return path


def _default_file_path() -> str:
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", "lambda-wrapper", "telemetry.ndjson")


SETTINGS: tuple[Setting, ...] = (
    Setting("LAMBDA_WRAPPER_DISABLED", "disabled", False, "true|false",
            "Kill switch: the wrapper execs the runtime untouched (read by the wrapper script).",
            _bool, "the wrapper"),
    Setting("LAMBDA_WRAPPER_STRICT", "strict", False, "true|false",
            "Turn invalid settings into an init error instead of disabling the feature.",
            _bool, "strict mode"),
    Setting("LAMBDA_WRAPPER_EXTENSION", "extension", True, "true|false",
            "Run the in-process extension (Telemetry API subscription and export).",
            _bool, "the extension"),
    Setting("LAMBDA_WRAPPER_EXPORTERS", "exporters", ("emf",), "comma list of " + "|".join(EXPORTER_NAMES),
            "Where telemetry goes; several at once.", _subset(EXPORTER_NAMES, allow_empty=True),
            "the extension"),
    Setting("LAMBDA_WRAPPER_TELEMETRY_TYPES", "telemetry_types", None, "comma list of " + "|".join(TELEMETRY_TYPES),
            "Telemetry API types to subscribe to; default: what the enabled exporters use.",
            _subset(TELEMETRY_TYPES), "the extension"),
    Setting("LAMBDA_WRAPPER_TELEMETRY_PORT", "telemetry_port", 4271, "1-65535 except 9001",
            "Preferred listener port; an ephemeral port is used when it is taken.",
            _int_between(1, 65535, forbidden=(9001,)), "the extension"),
    Setting("LAMBDA_WRAPPER_FLUSH", "flush", "adaptive", "|".join(FLUSH_STRATEGIES),
            "adaptive: registers for INVOKE, flushes only when due; background: no per-invoke platform wait.",
            _choices(FLUSH_STRATEGIES), "the extension"),
    Setting("LAMBDA_WRAPPER_FILE_PATH", "file_path", None, "absolute path under /tmp",
            "Where the file exporter appends NDJSON (default /tmp/lambda-wrapper/telemetry.ndjson).",
            _absolute_tmp_path, "the file exporter"),
)


class Settings:
    """The effective configuration; ``problems`` lists every rejected value."""

    disabled: bool
    strict: bool
    extension: bool
    exporters: tuple[str, ...]
    telemetry_types: tuple[str, ...] | None
    telemetry_port: int
    flush: str
    file_path: str | None

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.problems: list[Problem] = []
        self.disabled_features: set[str] = set()
        for setting in SETTINGS:
            raw = environ.get(setting.name)
            value = setting.default
            if raw is not None and raw != "":
                try:
                    value = setting.parse(raw)
                except (ValueError, TypeError):
                    self.problems.append(Problem(setting.name, raw, setting.accepted, setting.feature))
                    self.disabled_features.add(setting.feature)
            setattr(self, setting.attribute, value)
        if self.file_path is None:
            self.file_path = _default_file_path()

    def feature_enabled(self, feature: str) -> bool:
        return feature not in self.disabled_features

    @property
    def extension_enabled(self) -> bool:
        return self.extension and self.feature_enabled("the extension")


def load(environ: Mapping[str, str] | None = None) -> Settings:
    return Settings(os.environ if environ is None else environ)


def secret_names() -> set[str]:
    return {setting.name for setting in SETTINGS if setting.secret}


def render_reference() -> str:
    """The README's environment-variable table, generated from ``SETTINGS``."""
    rows = ["| variable | default | accepted | what it does |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = setting.default
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "(derived)" if default is None else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        accepted = setting.accepted.replace("|", "\\|")
        description = setting.description.replace("|", "\\|")
        rows.append(f"| `{setting.name}` | {shown} | {accepted} | {description} |")
    return "\n".join(rows) + "\n"


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + f"...({len(value)} chars)"
