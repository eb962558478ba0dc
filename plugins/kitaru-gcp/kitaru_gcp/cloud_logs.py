"""A job's output from Cloud Logging (`entries:list` over HTTP/JSON), where Vertex AI and
Cloud Run send what a job's container writes to stdout and stderr."""

from __future__ import annotations

from typing import Any

from .configs import GcpJobTargetConfig
from .gcp_clients import client_options, credentials, endpoint

#: At most this many lines are read back (the newest are kept); the rest stays in Cloud Logging.
MAX_LINES = 10000


def read_logs(config: GcpJobTargetConfig, log_filter: str) -> str:
    """The text of the entries matching `log_filter` in the config's project, oldest first.

    Logging is advisory: when it cannot be read (no `roles/logging.viewer`, the API off) the
    result says so and where to look, instead of failing the call it belongs to.
    """
    from google.api_core import exceptions

    try:
        entries = _client(config).logging_api.list_entries(
            [f"projects/{config.project}"], filter_=log_filter, order_by="timestamp asc", page_size=1000,
        )
        lines = [_text(entry.payload) for entry in entries]
    except exceptions.GoogleAPICallError as exc:
        reason = " ".join(str(getattr(exc, "message", "") or exc).split())[:300]
        return (f"(the logs could not be read from Cloud Logging: {reason}; see the Logs Explorer "
                f"of project {config.project} with the filter {log_filter})\n")
    lines = lines[-MAX_LINES:]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _client(config: GcpJobTargetConfig) -> Any:
    """Cloud Logging's HTTP/JSON client (its GAPIC client speaks only gRPC)."""
    from google.cloud.logging_v2.client import Client

    api = endpoint(config.logging_endpoint, "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING", "")
    return Client(project=config.project, credentials=credentials(config), _use_grpc=False,
                  client_options=client_options(api or None))


def _text(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message", ""))
    return "" if payload is None else str(payload)
