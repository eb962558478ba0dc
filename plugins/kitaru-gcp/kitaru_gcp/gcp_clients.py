"""What the `vertex` and `cloud-run` targets share: credentials, client options, GCP labels,
and turning a Google API error into kitaru's `TaskError`. The SDKs are imported inside the
functions, when a target first talks to its API."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from kitaru_core.errors import TaskError

from .configs import GcpJobTargetConfig

#: The scope every client asks Application Default Credentials for.
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def credentials(config: GcpJobTargetConfig) -> Any:
    """None (the client then finds Application Default Credentials itself), or anonymous
    credentials for a local emulator (`credentials: anonymous`)."""
    if config.credentials == "anonymous":
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    return None


def endpoint(configured: str | None, override_env: str, default: str) -> str:
    """The API endpoint: the config's, else gcloud's override variable for that API
    (`CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>`, e.g. `https://europe-west4-aiplatform.googleapis.com/`),
    else `default`. A URL's path is dropped: the clients add the API's own."""
    value = configured or os.environ.get(override_env, "").strip() or default
    parts = urlsplit(value)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else value.rstrip("/")


def client_options(endpoint: str | None) -> Any:
    """ClientOptions naming `endpoint` (scheme://host:port or host), or the SDK's default."""
    from google.api_core.client_options import ClientOptions

    return ClientOptions(api_endpoint=endpoint) if endpoint else ClientOptions()


def gcp_label(text: str) -> str:
    """`text` as a GCP label value: at most 63 lowercase letters, digits, '-' and '_'."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def job_labels(config: GcpJobTargetConfig, request_labels: dict[str, str]) -> dict[str, str]:
    """The stack's labels plus the runner's (execution, call, attempt) as GCP labels."""
    labels = dict(config.labels)
    labels.update({gcp_label(key): gcp_label(value) for key, value in request_labels.items()})
    labels["kitaru-managed"] = "true"
    return labels


def is_not_found(exc: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(exc, exceptions.NotFound)


def task_error(exc: BaseException, doing: str, service: str) -> TaskError:
    """A one-line `TaskError` for a refused or failed API request, with the usual fix."""
    from google.api_core import exceptions

    message = " ".join(str(getattr(exc, "message", "") or exc).split())[:500]
    hint = ""
    if isinstance(exc, exceptions.PermissionDenied | exceptions.Unauthenticated):
        hint = f"; check the credentials (gcloud auth application-default login) and the {service} IAM roles"
    elif isinstance(exc, exceptions.BadRequest):  # REST maps every 400 to BadRequest
        hint = "; check the target's config in the stack file"
    elif isinstance(exc, exceptions.NotFound):
        hint = f"; check the project and region, and that the {service} API is enabled"
    return TaskError(f"{service} refused {doing}: {message}{hint}")
