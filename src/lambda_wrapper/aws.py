"""The names the Lambda platform defines, each spelled once: environment variables,
their documented values, paths, and the Extensions and Telemetry API routes.

Everything in the runtime package that reads the platform's environment or calls its
APIs takes the name from here (a test holds every other module to that), so a typo
cannot silently read an unset variable. Our own ``LAMBDA_WRAPPER_*`` settings are in
``variables.py``; the variables the wrapper script hands over are in ``settings.Handover``.
"""

from __future__ import annotations

import os

# The function and its runtime.
RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"
FUNCTION_MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"
LOG_GROUP_NAME = "AWS_LAMBDA_LOG_GROUP_NAME"
LOG_STREAM_NAME = "AWS_LAMBDA_LOG_STREAM_NAME"
LOG_FORMAT = "AWS_LAMBDA_LOG_FORMAT"
LOG_LEVEL = "AWS_LAMBDA_LOG_LEVEL"
INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
MAX_CONCURRENCY = "AWS_LAMBDA_MAX_CONCURRENCY"
EXECUTION_ENV = "AWS_EXECUTION_ENV"
EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
HANDLER = "_HANDLER"
LATEST_VERSION = "$LATEST"  # AWS_LAMBDA_FUNCTION_VERSION of an unpublished function
TASK_ROOT = "LAMBDA_TASK_ROOT"
TRACE_ID = "_X_AMZN_TRACE_ID"
XRAY_DAEMON_ADDRESS = "AWS_XRAY_DAEMON_ADDRESS"
SAM_LOCAL = "AWS_SAM_LOCAL"
TMPDIR = "TMPDIR"

# Credentials: only ever shown masked.
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"
CONTAINER_CREDENTIALS_FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
CONTAINER_AUTHORIZATION_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"

# Values of AWS_LAMBDA_INITIALIZATION_TYPE (unset means on-demand).
ON_DEMAND = "on-demand"
PROVISIONED_CONCURRENCY = "provisioned-concurrency"
SNAP_START = "snap-start"
MANAGED_INSTANCES = "lambda-managed-instances"

# Paths and hosts of the execution environment.
TMP = "/tmp"
SANDBOX_HOST = "sandbox.localdomain"

# Platform APIs (paths under AWS_LAMBDA_RUNTIME_API) and Telemetry API schema versions.
EXTENSION_API = "/2020-01-01/extension"
TELEMETRY_API = "/2022-07-01/telemetry"
EXTENSION_NAME_HEADER = "Lambda-Extension-Name"
EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"
CLASSIC_SCHEMA = "2022-12-13"
MANAGED_INSTANCES_SCHEMA = "2025-01-29"


def tmp_dir() -> str:
    """The writable directory: ``TMPDIR`` when set and not empty, else Lambda's ``/tmp``."""
    return os.environ.get(TMPDIR) or TMP


def wrapper_tmp_dir() -> str:
    """Where the toolkit keeps its files (spool, markers, locks): its own directory in ``tmp_dir()``."""
    return os.path.join(tmp_dir(), "lambda-wrapper")
