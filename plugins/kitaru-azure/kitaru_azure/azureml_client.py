"""An `MLClient` (azure-ai-ml) built from the `azureml` target's config.

Imported only when the target first talks to Azure: azure-ai-ml takes seconds to import.

With `endpoint` set, every request the SDK makes (ARM, the workspace's discovery and run
history services, log downloads) goes to that base URL instead of its Azure host, which is
kept in the `Host` header. The rewrite happens in the HTTP transport, after the SDK's
policies (the bearer-token policy refuses plain http, so the URL stays https until then).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .configs import AzureMLTargetConfig

#: Loggers of the SDK that print notices meant for its own developers (experimental schema
#: classes used inside `jobs.get`), once per process, to the runner's stderr.
_NOISY_LOGGERS = ("azure.ai.ml._utils._experimental",)


def ml_client(config: AzureMLTargetConfig) -> Any:
    """The workspace's `MLClient`, with the config's credential and endpoint."""
    from azure.ai.ml import MLClient

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"enable_telemetry": False, "show_progress": False}
    if config.endpoint:
        kwargs["transport"] = redirecting_transport(config.endpoint)
    return MLClient(
        credential(config), config.subscription_id, config.resource_group, config.workspace, **kwargs
    )


def credential(config: AzureMLTargetConfig) -> Any:
    """`DefaultAzureCredential`, or for a test double a placeholder token (`credential: none`)."""
    if config.credential == "none":
        return PlaceholderCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class PlaceholderCredential:
    """A `TokenCredential` whose token means nothing: for a local double that checks only that a
    bearer token is sent (the config allows it only with a loopback `endpoint`). It is shaped as
    an unsigned JWT naming the all-zero tenant, which the SDK reads for its studio links."""

    token = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "none", "typ": "JWT"}, {"tid": "00000000-0000-0000-0000-000000000000"})
    ) + "."

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self.token, int(time.time()) + 3600)


def redirecting_transport(endpoint: str) -> Any:
    """A `RequestsTransport` that sends each request to `endpoint`, keeping its path and query and
    naming the original host in `Host`."""
    from azure.core.pipeline.transport import RequestsTransport

    target = urlsplit(endpoint)

    class RedirectingTransport(RequestsTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            original = request.url
            url = urlsplit(original)
            request.headers["Host"] = url.netloc
            request.url = urlunsplit((target.scheme, target.netloc, url.path, url.query, ""))
            try:
                return super().send(request, **kwargs)
            finally:  # a retry sends the same request again through the policies
                request.url = original
                del request.headers["Host"]

    return RedirectingTransport()
