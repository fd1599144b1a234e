"""Every ``LAMBDA_WRAPPER_*`` variable (and the OpenTelemetry ones the otlp exporter
honours), declared once: its name, the ``Settings`` attribute it sets (whose default is
the variable's), accepted values, a one-line description, its parser and what a bad
value switches off. The same table renders the README's environment-variable reference
(``lambda-wrapper doctor --markdown``), so the docs cannot drift from the code.

``Settings`` loads this module only where a variable of ours is set: with the defaults,
no declaration is built and no parser made.
"""

from __future__ import annotations

import os

from . import aws
from .settings import Settings

TYPE_CHECKING = False  # annotations only: no import statement runs for them
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
EXPORTER_NAMES = ("emf", "otlp", "http", "file", "xray")
TELEMETRY_TYPES = ("platform", "function", "extension")
FLUSH_STRATEGIES = ("auto", "adaptive", "background")
TELEMETRY_SOURCES = ("auto", "platform", "self")
INSTRUMENTATIONS = ("botocore", "urllib3", "requests", "http.client")


class Problem:
    __slots__ = ("accepted", "consequence", "name", "secret", "value")

    def __init__(self, name: str, value: str, accepted: str, consequence: str, secret: bool = False) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        self.consequence = consequence
        self.secret = secret

    def describe(self) -> str:
        shown = "<redacted>" if self.secret else repr(_clip(self.value))
        return f"{self.name}={shown} is invalid (accepted: {self.accepted}); {self.consequence}"


class PartialValue(ValueError):
    """Some of a list value was usable: keep that part and report the rest."""

    def __init__(self, usable: object) -> None:
        super().__init__(usable)
        self.usable = usable


class InvalidSettingsError(ValueError):
    """Raised at Init under ``LAMBDA_WRAPPER_STRICT=true`` when a setting is invalid."""


class Setting:
    """The declaration of one environment variable; its default is the ``Settings``
    attribute it sets."""

    __slots__ = ("accepted", "attribute", "description", "feature", "name", "parse", "secret")

    # ``feature`` names what a bad value switches off. ``None`` means the value is
    # only an override of a safe default, so a bad value falls back to the default.
    def __init__(self, name: str, attribute: str, accepted: str, description: str,
                 parse: Callable[[str], object], feature: str | None, secret: bool = False) -> None:
        self.name = name
        self.attribute = attribute
        self.accepted = accepted
        self.description = description
        self.parse = parse
        self.feature = feature
        self.secret = secret

    @property
    def default(self) -> object:
        return getattr(Settings, self.attribute)


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
        known = tuple(item for item in items if item in options)
        if known != items:
            raise PartialValue(known) if known else ValueError(raw)
        if not items and not allow_empty:
            raise ValueError(raw)
        return items

    return parse


def _instrumentations(raw: str) -> tuple[str, ...]:
    """``all`` or a comma list of ``INSTRUMENTATIONS``; unknown names are reported, the rest kept."""
    names = _subset((*INSTRUMENTATIONS, "all"), allow_empty=True)
    try:
        items = names(raw)
    except PartialValue as partial:
        raise PartialValue(_expand_all(partial.usable)) from None  # type: ignore[arg-type]
    return _expand_all(items)


def _expand_all(items: tuple[str, ...]) -> tuple[str, ...]:
    return INSTRUMENTATIONS if "all" in items else items


def _text(raw: str) -> str:
    if len(raw) > 4096:
        raise ValueError(raw)
    return raw


def _absolute_tmp_path(raw: str) -> str:
    # Lambda's only writable place is /tmp; refusing anything else here means a typo can
    # never make us try (and fail) to write into the read-only code or layer dirs.
    path = os.path.normpath(raw.strip())
    tmp = os.path.normpath(aws.tmp_dir())
    if not os.path.isabs(path) or not (path + "/").startswith(tmp + "/") or path == tmp:
        raise ValueError(raw)
    return path


def _url(raw: str) -> str:
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or len(value) > 2048 or " " in value:
        raise ValueError(raw)
    return value


def _headers(raw: str) -> tuple[tuple[str, str], ...]:
    # The OTEL_EXPORTER_OTLP_HEADERS format: comma-separated key=value, values URL-encoded.
    pairs = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(c in key for c in " \t:\r\n") or any(c in value for c in "\r\n"):
            raise ValueError(raw)
        pairs.append((key, _percent_decode(value.strip())))
    return tuple(pairs)


def _percent_decode(value: str) -> str:
    if "%" not in value:
        return value
    from urllib.parse import unquote  # rare; keep urllib off the common path

    return unquote(value)


def _namespace(raw: str) -> str:
    value = raw.strip()
    if not 1 <= len(value) <= 255 or any(ord(c) < 32 for c in value) or ":" in value:
        raise ValueError(raw)
    return value


def _dimension_names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names or len(names) > 30 or any(len(n) > 250 or not n.isprintable() for n in names):
        raise ValueError(raw)
    return names


SETTINGS: tuple[Setting, ...] = (
    Setting("LAMBDA_WRAPPER_DISABLED", "disabled", "true|false",
            "Kill switch: the wrapper execs the runtime untouched (read by the wrapper script).",
            _bool, "the wrapper"),
    Setting("LAMBDA_WRAPPER_STRICT", "strict", "true|false",
            "Turn invalid settings into an init error instead of disabling the feature.",
            _bool, None),
    Setting("LAMBDA_WRAPPER_EXTENSION", "extension", "true|false",
            "Run the in-process extension (Telemetry API subscription and export).",
            _bool, "the extension"),
    Setting("LAMBDA_WRAPPER_EXPORTERS", "exporters", "comma list of " + "|".join(EXPORTER_NAMES),
            "Where telemetry goes; several at once.", _subset(EXPORTER_NAMES, allow_empty=True),
            None),
    Setting("LAMBDA_WRAPPER_TELEMETRY_TYPES", "telemetry_types",
            "comma list of " + "|".join(TELEMETRY_TYPES),
            "Telemetry API types to subscribe to; default: what the enabled exporters use.",
            _subset(TELEMETRY_TYPES), None),
    Setting("LAMBDA_WRAPPER_TELEMETRY_PORT", "telemetry_port", "1-65535 except 9001",
            "Preferred listener port; an ephemeral port is used when it is taken.",
            _int_between(1, 65535, forbidden=(9001,)), None),
    Setting("LAMBDA_WRAPPER_TELEMETRY_SOURCE", "telemetry_source", "|".join(TELEMETRY_SOURCES),
            "Where per-invocation records come from. platform: the Telemetry API only; self: the "
            "supervisor's own measurements only; auto: the platform's, the supervisor's where the platform's "
            "do not come (subscription refused, or a report missing 3 invocations later).",
            _choices(TELEMETRY_SOURCES), None),
    Setting("LAMBDA_WRAPPER_FLUSH", "flush", "|".join(FLUSH_STRATEGIES),
            "adaptive: register for INVOKE, flush before /event/next when due; background: no events, "
            "flush beside the next invocation; auto: background with only local exporters, else adaptive.",
            _choices(FLUSH_STRATEGIES), None),
    Setting("LAMBDA_WRAPPER_FILE_PATH", "file_path", "absolute path under /tmp",
            "Where the file exporter appends NDJSON (default /tmp/lambda-wrapper/telemetry.ndjson).",
            _absolute_tmp_path, "the file exporter"),
    Setting("LAMBDA_WRAPPER_FLUSH_BUDGET_MS", "flush_budget_ms", "1-10000",
            "Most time one invocation may spend exporting; the rest waits in the spool.",
            _int_between(1, 10000), None),
    Setting("LAMBDA_WRAPPER_SPOOL_MAX_BYTES", "spool_max_bytes", "65536-1073741824",
            "Cap of the crash-safe spool under /tmp; the oldest records are dropped (and counted) past it.",
            _int_between(65536, 1024 * 1024 * 1024), None),
    Setting("LAMBDA_WRAPPER_EMF_NAMESPACE", "emf_namespace", "1-255 printable chars, no ':'",
            "CloudWatch namespace of the EMF metrics.", _namespace, None),
    Setting("LAMBDA_WRAPPER_EMF_DIMENSIONS", "emf_dimensions",
            "comma list of FunctionName|FunctionVersion|ColdStart or your own names",
            "Dimension set of the EMF metrics.", _dimension_names, None),
    Setting("LAMBDA_WRAPPER_HTTP_ENDPOINT", "http_endpoint", "http(s) URL",
            "Where the http exporter POSTs gzipped JSON batches.", _url, "the http exporter"),
    Setting("LAMBDA_WRAPPER_HTTP_HEADERS", "http_headers", "key=value,key2=value2 (values URL-encoded)",
            "Extra headers of the http exporter (never logged).", _headers, "the http exporter", secret=True),
    Setting("LAMBDA_WRAPPER_LOGS", "logs", "off|structlog",
            "structlog: render the function's stdlib logging as JSON with invocation context.",
            _choices(("off", "structlog")), "structured logs"),
    Setting("LAMBDA_WRAPPER_PROCESS_METRICS", "process_metrics", "true|false",
            "Per-invocation process metrics from /proc (psutil where it cannot be opened): RSS, CPU, fds, "
            "threads, /tmp, GC.",
            _bool, "process metrics"),
    Setting("LAMBDA_WRAPPER_TIMEOUT_WARNING_MS", "timeout_warning_ms", "0 (off) or 1-900000",
            "Warn this long before the deadline, with the handler's stack, then flush.",
            _int_between(0, 900000), "the timeout warning"),
    Setting("LAMBDA_WRAPPER_MEMORY_WARNING_PCT", "memory_warning_pct", "0 (off) or 1-100",
            "Warn when RSS crosses this share of the function's memory size.",
            _int_between(0, 100), "the memory warning"),
    Setting("LAMBDA_WRAPPER_IMPORT_PROFILE", "import_profile", "0 (off) or 1-1000",
            "Report the N slowest imports of the cold start as one record.",
            _int_between(0, 1000), "the import profile"),
    Setting("LAMBDA_WRAPPER_INSTRUMENT", "instrument", "comma list of " + "|".join(INSTRUMENTATIONS)
            + ", or all", "Record a span per call of these libraries, each patched only once the function "
            "imports it.", _instrumentations, "call instrumentation"),
    Setting("LAMBDA_WRAPPER_INSTRUMENT_PROPAGATE", "instrument_propagate", "true|false",
            "Instrumented HTTP requests carry traceparent (and X-Amzn-Trace-Id where the AWS SDK does not "
            "add it); signed AWS requests stay valid.", _bool, "trace propagation"),
    # Standard OpenTelemetry variables the otlp exporter honours (declared so that
    # doctor shows and validates them, and masks the secret ones).
    Setting("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint", "http(s) URL",
            "OTLP/HTTP base URL; /v1/logs, /v1/metrics and /v1/traces are appended.",
            _url, "the otlp exporter"),
    Setting("OTEL_EXPORTER_OTLP_HEADERS", "otlp_headers", "key=value,... (values URL-encoded)",
            "Headers sent with every OTLP request (never logged).",
            _headers, "the otlp exporter", secret=True),
    Setting("OTEL_EXPORTER_OTLP_TIMEOUT", "otlp_timeout_ms", "1-600000 (ms)",
            "Timeout of one OTLP request, further bounded by the flush budget.",
            _int_between(1, 600000), None),
    Setting("OTEL_SERVICE_NAME", "otel_service_name", "text",
            "service.name of the OTLP resource (default: the function name).", _text, None),
    Setting("OTEL_RESOURCE_ATTRIBUTES", "otel_resource_attributes", "key=value,... (values URL-encoded)",
            "Extra OTLP resource attributes.", _headers, None),
    # Environment tweaks. The wrapper script applies them (reading these switches
    # itself, with the same defaults) before Python starts; they are declared here so
    # that a bad value is reported, doctor shows them and the README lists them. Each
    # default comes from a measurement in docs/tweaks.md. None overrides a variable the
    # user set.
    Setting("LAMBDA_WRAPPER_TWEAK_FAULTHANDLER", "tweak_faulthandler", "true|false",
            "Set PYTHONFAULTHANDLER=1: a crash (SIGSEGV, SIGABRT...) prints every thread's Python stack.",
            _bool, None),
    Setting("LAMBDA_WRAPPER_TWEAK_DONT_WRITE_BYTECODE", "tweak_dont_write_bytecode", "true|false",
            "Set PYTHONDONTWRITEBYTECODE=1: no futile .pyc writes into the read-only code dirs.",
            _bool, None),
    Setting("LAMBDA_WRAPPER_TWEAK_MALLOC_ARENA_MAX", "tweak_malloc_arena_max", "true|false",
            "Set MALLOC_ARENA_MAX=2: fewer glibc malloc arenas for the extra threads.",
            _bool, None),
    Setting("LAMBDA_WRAPPER_TWEAK_NO_DEBUG_RANGES", "tweak_no_debug_ranges", "true|false",
            "Set PYTHONNODEBUGRANGES=1 (3.11+): smaller code objects, tracebacks without ^^^ markers.",
            _bool, None),
)


def read(settings: Settings, environ: Mapping[str, str]) -> None:
    """Set on ``settings`` every variable ``environ`` sets; a bad value is a ``Problem``
    (and, for a feature's variable, the feature disabled), never an exception."""
    # One pass over the keys: ``os.environ.get`` of an unset name raises and catches a
    # KeyError, and most declared names are unset.
    present = set(environ)
    for setting in SETTINGS:
        if setting.name not in present:
            continue
        raw = environ[setting.name]
        if raw == "":
            continue
        try:
            value = setting.parse(raw)
        except PartialValue as partial:
            value = partial.usable
            _reject(settings, setting, raw, "the unknown entries are ignored")
        except (ValueError, TypeError):
            if setting.feature is None:
                _reject(settings, setting, raw, f"using the default {_show(setting.default)}")
            else:
                _reject(settings, setting, raw, f"{setting.feature} is disabled")
                settings.disabled_features.add(setting.feature)
            continue
        setattr(settings, setting.attribute, value)


def _reject(settings: Settings, setting: Setting, raw: str, consequence: str) -> None:
    settings.problems.append(Problem(setting.name, raw, setting.accepted, consequence, setting.secret))


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return "(derived)" if value is None else str(value)


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + f"...({len(value)} chars)"
