"""An `MLClient` (azure-ai-ml) built from the `azureml` target's config.

Imported only when the target first talks to Azure: azure-ai-ml takes seconds to import.

With an endpoint (the config's `endpoint`, else `KITARU_AZUREML_ENDPOINT`), every request the
SDK makes (ARM, the workspace's discovery and run history services, log downloads) goes to that
base URL instead of its Azure host, which is kept in the `Host` header. The rewrite happens in
the HTTP transport, after the SDK's policies (the bearer-token policy refuses plain http, so the
URL stays https until then). A local double (http on a loopback address) gets a placeholder
token, never a real one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kitaru_core.errors import ConfigError

from .configs import AzureMLTargetConfig, check_endpoint

#: Loggers of the SDK that print notices meant for its own developers (experimental schema
#: classes used inside `jobs.get`), once per process, to the runner's stderr.
_NOISY_LOGGERS = ("azure.ai.ml._utils._experimental",)


#: Where the SDK's requests go when the config names no `endpoint` (a local double in the tests).
ENDPOINT_ENV = "KITARU_AZUREML_ENDPOINT"


def endpoint(config: AzureMLTargetConfig) -> str | None:
    """The config's `endpoint`, else `$KITARU_AZUREML_ENDPOINT` (checked as the config's), else None."""
    url = config.endpoint or os.environ.get(ENDPOINT_ENV) or None
    if url is not None:
        try:
            check_endpoint(url)
        except ValueError as exc:
            raise ConfigError(f"{exc} (from {'the config' if config.endpoint else ENDPOINT_ENV})") from None
    return url


def ml_client(config: AzureMLTargetConfig) -> Any:
    """The workspace's `MLClient`: `DefaultAzureCredential` and Azure's hosts, or the endpoint's."""
    from azure.ai.ml import MLClient

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"enable_telemetry": False, "show_progress": False}
    url = endpoint(config)
    if url is not None:
        kwargs["transport"] = redirecting_transport(url)
    if url is not None and check_endpoint(url):
        credential: Any = PlaceholderCredential()
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return MLClient(credential, config.subscription_id, config.resource_group, config.workspace, **kwargs)


class PlaceholderCredential:
    """A `TokenCredential` whose token means nothing: for a local double that checks only that a
    bearer token is sent (used only with a loopback endpoint). It is shaped as
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
