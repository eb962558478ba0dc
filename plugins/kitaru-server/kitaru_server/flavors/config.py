"""Config model of the `server` registry (imported when flavors are listed: keep light)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from kitaru_core.config_types import AbsolutePath
from kitaru_core.interfaces import FlavorConfig


class ServerRegistryConfig(FlavorConfig):
    url: str = Field(
        description="The kitaru server, e.g. https://kitaru.internal:8237 (`kitaru login URL` "
        "registers a stack with it)",
    )
    api_key: str | None = Field(
        default=None,
        description="An API key of scope operator (runners) or read; keep it out of the stack "
        "file with ${env:KITARU_API_KEY}. Default: the key `kitaru login URL` stored for this "
        "server, else the KITARU_API_KEY variable",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for an answer")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for a connection")
    retries: int = Field(
        default=4, ge=0, le=20,
        description="Attempts again after a connection failure: any call when the connection "
        "could not be made, reads (and other repeatable calls) also when it broke mid-request",
    )
    verify: bool = Field(default=True, description="Check the server's TLS certificate")
    ca_bundle: AbsolutePath | None = Field(
        default=None, description="A CA bundle (PEM) to check the server's certificate with",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not a server URL; write it like https://kitaru.example.com")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} has a query or fragment; give the server's base URL")
        return normalize_url(value)


def normalize_url(url: str) -> str:
    """The server's base URL as stored and looked up: no trailing slash, no `/api/v1`."""
    url = url.strip().rstrip("/")
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url
