"""`layer publish`: upload a built zip as a new layer version, described by its manifest."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .architectures import resolve_architecture
from .errors import LayerBuildError, LayerUsageError
from .manifest import read_manifest

# PublishLayerVersion's LayerName pattern and length limit (Lambda API reference).
_LAYER_NAME = re.compile(
    r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
)
MAX_LAYER_NAME = 140
MAX_DESCRIPTION = 256
# Lambda's limit for a zip sent in the request itself (larger ones must go through S3).
MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECURITY_TOKEN")


def validate_layer_name(name: str) -> None:
    if not 1 <= len(name) <= MAX_LAYER_NAME:
        raise LayerUsageError(f"layer name must be 1-{MAX_LAYER_NAME} characters, got {len(name)}")
    if _LAYER_NAME.fullmatch(name) is None:
        raise LayerUsageError(
            f"invalid layer name {name!r}: use letters, digits, '-' and '_' (or a layer ARN)"
        )


def check_zip(zip_path: Path) -> None:
    if not zip_path.is_file():
        raise LayerBuildError(f"zip {zip_path} does not exist; build it with `lambda-wrapper layer build`")
    size = zip_path.stat().st_size
    if size > MAX_DIRECT_UPLOAD_BYTES:
        raise LayerBuildError(
            f"{zip_path.name} is {size:,} bytes, over Lambda's {MAX_DIRECT_UPLOAD_BYTES:,}-byte "
            "direct upload limit"
        )


def publish_layer(
    zip_path: Path | str,
    name: str,
    *,
    arch: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Publish `zip_path` as a new version of layer `name`; returns Lambda's response."""
    zip_path = Path(zip_path)
    validate_layer_name(name)
    check_zip(zip_path)
    manifest = read_manifest(zip_path)
    built_for = manifest.get("architecture")
    if arch is not None and resolve_architecture(arch).name != built_for:
        raise LayerUsageError(f"{zip_path.name} was built for {built_for}, not {arch}")
    description = description if description is not None else str(manifest.get("description", ""))
    if len(description) > MAX_DESCRIPTION:
        raise LayerUsageError(
            f"description is {len(description)} characters; Lambda allows {MAX_DESCRIPTION}"
        )

    client = _lambda_client(region, endpoint_url)
    request = {
        "LayerName": name,
        "Description": description,
        "Content": {"ZipFile": zip_path.read_bytes()},
        "CompatibleRuntimes": list(manifest["compatible_runtimes"]),
        "CompatibleArchitectures": [built_for],
        "LicenseInfo": manifest["license"],
    }
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        response: dict[str, Any] = client.publish_layer_version(**request)
    except NoCredentialsError:
        raise LayerBuildError(_NO_CREDENTIALS) from None
    except ClientError as error:
        details = error.response.get("Error", {})
        message = f"{details.get('Code', 'error')}: {details.get('Message', '')}"
        raise LayerBuildError(f"Lambda refused the layer ({redact(message)})") from None
    except BotoCoreError as error:
        raise LayerBuildError(f"publishing failed: {redact(str(error))}") from None
    return response


_NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or run `aws configure`"
)


def _lambda_client(region: str | None, endpoint_url: str | None) -> Any:
    try:
        import boto3
        from botocore.exceptions import NoRegionError, ProfileNotFound
    except ImportError:
        raise LayerBuildError(
            "publishing needs boto3, which is not installed: pip install 'lambda-wrapper[publish]'"
        ) from None
    try:
        session = boto3.session.Session(region_name=region)
        # Checked before the upload so a missing login is reported as such, not as a signing error.
        if session.get_credentials() is None:
            raise LayerBuildError(_NO_CREDENTIALS)
        return session.client("lambda", endpoint_url=endpoint_url)
    except NoRegionError:
        raise LayerBuildError("no AWS region: pass --region or set AWS_REGION") from None
    except ProfileNotFound as error:
        raise LayerBuildError(redact(str(error))) from None


def redact(text: str) -> str:
    """Remove anything that could be a credential from a message we are about to print."""
    for variable in _SECRET_VARIABLES:
        secret = os.environ.get(variable)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _ACCESS_KEY_ID.sub("***", text)
