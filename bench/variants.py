"""The variants: the same function, bare, under our wrapper, and under the tools users pick instead.

Every variant runs ``functions/app.py`` (Powertools adds its Logger and Metrics around
it, as its users do). ``{sink}`` in an environment value is replaced by the URL of the
harness's local OTLP/HTTP sink, which stands in for a collector so that exporters
that send over the network do real requests instead of failing fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .layers import LayerRecipe

OWN_LAYER = "lambda-wrapper"
SINK_PLACEHOLDER = "{sink}"
# For variants measured without a collector (their local exporters need none).
UNREACHABLE_SINK = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    how: str  # how it was run, for the label
    handler: str = "app.handler"
    layer: str | None = None  # OWN_LAYER or the name of a LayerRecipe
    exec_wrapper: str | None = None  # AWS_LAMBDA_EXEC_WRAPPER, a path inside the function
    env: Mapping[str, str] = field(default_factory=dict)
    budgeted: bool = False  # one of ours: held to the budgets
    # Libraries the variant's features import that bare does not: their own import time
    # and memory are measured in the same run, since the budgets exempt them.
    libraries: tuple[str, ...] = ()

    def environment(self, sink_url: str) -> dict[str, str]:
        resolved = {key: value.replace(SINK_PLACEHOLDER, sink_url) for key, value in self.env.items()}
        if self.exec_wrapper:
            resolved["AWS_LAMBDA_EXEC_WRAPPER"] = self.exec_wrapper
        return resolved


# Every feature of ours switched on, as the cold-path budgets define it: the local
# exporters only, the import profile off (it is a diagnosis, not a feature one runs with).
EVERY_FEATURE_LOCAL_ENV: dict[str, str] = {
    "LAMBDA_WRAPPER_EXPORTERS": "emf,file",
    "LAMBDA_WRAPPER_TELEMETRY_TYPES": "platform,function,extension",
    "LAMBDA_WRAPPER_LOGS": "structlog",
    "LAMBDA_WRAPPER_PROCESS_METRICS": "true",
    "LAMBDA_WRAPPER_TIMEOUT_WARNING_MS": "1000",
    "LAMBDA_WRAPPER_MEMORY_WARNING_PCT": "90",
}
# The libraries those features load, whose own import is the user's choice and price
# (process metrics read /proc themselves: psutil is imported only where it cannot be opened).
EVERY_FEATURE_LIBRARIES = ("structlog",)
# Every feature of ours switched on, with every exporter sending somewhere real.
ALL_FEATURES_ENV: dict[str, str] = {
    **EVERY_FEATURE_LOCAL_ENV,
    "LAMBDA_WRAPPER_EXPORTERS": "emf,otlp,http,file",
    "OTEL_EXPORTER_OTLP_ENDPOINT": SINK_PLACEHOLDER,
    "LAMBDA_WRAPPER_HTTP_ENDPOINT": SINK_PLACEHOLDER + "/ingest",
    "LAMBDA_WRAPPER_IMPORT_PROFILE": "20",
}
# Settings that switch a feature but that "every feature on" does not need to set.
NOT_FEATURES = {
    "LAMBDA_WRAPPER_DISABLED",
    "LAMBDA_WRAPPER_EXTENSION",
    "LAMBDA_WRAPPER_FILE_PATH",
    "LAMBDA_WRAPPER_HTTP_HEADERS",
    "OTEL_EXPORTER_OTLP_HEADERS",
}

OTEL_RECIPE = LayerRecipe(
    name="otel",
    requirements=(
        "opentelemetry-distro==0.66b1",
        "opentelemetry-instrumentation-aws-lambda==0.66b1",
        "opentelemetry-exporter-otlp-proto-http==1.45.1",
        "opentelemetry-propagator-aws-xray==1.0.2",
    ),
    labelled=("opentelemetry-instrumentation-aws-lambda", "opentelemetry-distro", "opentelemetry-sdk"),
    root_files=("otel-instrument",),
)
DATADOG_RECIPE = LayerRecipe(
    name="datadog",
    requirements=("datadog-lambda==8.130.0",),
    labelled=("datadog-lambda", "ddtrace"),
)
POWERTOOLS_RECIPE = LayerRecipe(
    name="powertools",
    requirements=("aws-lambda-powertools==3.37.0",),
    labelled=("aws-lambda-powertools",),
)
RECIPES: dict[str, LayerRecipe] = {
    recipe.name: recipe for recipe in (OTEL_RECIPE, DATADOG_RECIPE, POWERTOOLS_RECIPE)
}

BARE = Variant(
    name="bare",
    title="bare runtime",
    how="awslambdaric via /var/runtime/bootstrap, no layer",
    budgeted=True,
)
WRAPPER_DEFAULT = Variant(
    name="wrapper-default",
    title="lambda-wrapper, defaults",
    how="AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-wrapper, no settings (EMF exporter, platform telemetry)",
    layer=OWN_LAYER,
    exec_wrapper="/opt/lambda-wrapper",
    budgeted=True,
)
WRAPPER_ALL = Variant(
    name="wrapper-all",
    title="lambda-wrapper, every feature on",
    how="AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-wrapper; exporters emf,file; platform+function+extension "
    "telemetry; structlog logs; process metrics; timeout and memory warnings",
    layer=OWN_LAYER,
    exec_wrapper="/opt/lambda-wrapper",
    env=EVERY_FEATURE_LOCAL_ENV,
    budgeted=True,
    libraries=EVERY_FEATURE_LIBRARIES,
)
WRAPPER_REMOTE = Variant(
    name="wrapper-remote",
    title="lambda-wrapper, every feature on, remote exporters too",
    how="as every feature on, plus the otlp and http exporters (to the local sink) and the import profile",
    layer=OWN_LAYER,
    exec_wrapper="/opt/lambda-wrapper",
    env=ALL_FEATURES_ENV,
    libraries=EVERY_FEATURE_LIBRARIES,
)
OTEL = Variant(
    name="otel",
    title="OpenTelemetry auto-instrumentation",
    how="AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument (bench/wrappers/otel-instrument, a reduced "
    "equivalent of the OTel Lambda layer's script) running opentelemetry-instrument; aws-lambda "
    "instrumentation only; OTLP/HTTP traces and metrics to the local sink (stands in for the "
    "collector extension)",
    layer="otel",
    exec_wrapper="/opt/otel-instrument",
    env={"OTEL_EXPORTER_OTLP_ENDPOINT": SINK_PLACEHOLDER},
)
DATADOG = Variant(
    name="datadog",
    title="Datadog (datadog-lambda)",
    how="_HANDLER=datadog_lambda.handler.handler, DD_LAMBDA_HANDLER=app.handler, DD_FLUSH_TO_LOG=true, "
    "no Datadog extension (metrics and traces flushed to logs); pip-installed packages, unstripped",
    handler="datadog_lambda.handler.handler",
    layer="datadog",
    env={"DD_LAMBDA_HANDLER": "app.handler", "DD_FLUSH_TO_LOG": "true", "DD_TRACE_ENABLED": "true"},
)
POWERTOOLS = Variant(
    name="powertools",
    title="Powertools Logger + Metrics",
    how="aws-lambda-powertools in a layer; the handler adds Logger.inject_lambda_context, "
    "Metrics.log_metrics, one log line and one EMF metric per invocation (stdout)",
    handler="powertools_app.handler",
    layer="powertools",
    env={"POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "Bench"},
)

ALL_VARIANTS: tuple[Variant, ...] = (
    BARE, WRAPPER_DEFAULT, WRAPPER_ALL, WRAPPER_REMOTE, OTEL, DATADOG, POWERTOOLS
)
# The budgeted variants, and the peer that one budget compares "every feature on" with.
BUDGET_VARIANTS: tuple[Variant, ...] = tuple(
    variant for variant in ALL_VARIANTS if variant.budgeted or variant is POWERTOOLS
)


def select(names: str | None, default: tuple[Variant, ...] = ALL_VARIANTS) -> tuple[Variant, ...]:
    """Variants named in a comma list (bare is always included: every ratio needs it)."""
    if not names:
        return default
    known = {variant.name: variant for variant in ALL_VARIANTS}
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(known)}")
    if BARE.name not in wanted:
        wanted.insert(0, BARE.name)
    return tuple(known[name] for name in dict.fromkeys(wanted))


def uncovered_feature_settings() -> list[str]:
    """Feature settings that the "every feature on" variant does not set (it should, or say why)."""
    from lambda_wrapper.variables import SETTINGS

    return [
        setting.name
        for setting in SETTINGS
        if setting.feature and setting.name not in ALL_FEATURES_ENV and setting.name not in NOT_FEATURES
    ]
