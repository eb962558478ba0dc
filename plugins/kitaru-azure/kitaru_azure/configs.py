"""Config models of the Azure flavors (imported when flavors are listed: keep light)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from kitaru_core.stores import FsspecStoreConfig

_SECRET = " (a secret: write ${env:NAME}, never the value)"


class AzureStoreConfig(FsspecStoreConfig):
    """A Blob Storage container and prefix. With only `account_name`, credentials come from
    `DefaultAzureCredential` (environment, workload or managed identity, Azure CLI login);
    the other keys choose a credential explicitly, each from `${env:...}`."""

    schemes: ClassVar[tuple[str, ...]] = ("az", "abfs", "abfss")

    path: str = Field(description="az://container/prefix (or abfs://) where artifacts live")
    account_name: str | None = Field(
        default=None, description="Storage account; default AZURE_STORAGE_ACCOUNT_NAME"
    )
    connection_string: str | None = Field(default=None, description="A connection string" + _SECRET)
    account_key: str | None = Field(default=None, description="The account's key" + _SECRET)
    sas_token: str | None = Field(default=None, description="A SAS token" + _SECRET)
    tenant_id: str | None = Field(default=None, description="Service principal: tenant id")
    client_id: str | None = Field(default=None, description="Service principal: client id")
    client_secret: str | None = Field(default=None, description="Service principal: secret" + _SECRET)
    anon: bool = Field(default=False, description="Anonymous access to a public container")
