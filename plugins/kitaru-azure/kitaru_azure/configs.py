"""Config models of the Azure flavors (imported when flavors are listed: keep light: no Azure SDK)."""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from kitaru_core.interfaces import FlavorConfig, parse_size
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


class AzureMLCapacity(FlavorConfig):
    """What one node of the job's instance type has; the call's `resources` must fit in it."""

    cpu: float | None = Field(default=None, gt=0, description="vCPUs of one node")
    memory: str | None = Field(default=None, description="Memory of one node, e.g. '14Gi'")
    gpu: int = Field(default=0, ge=0, description="GPUs of one node")
    disk: str | None = Field(default=None, description="Local (temporary) disk of one node, e.g. '28Gi'")

    @field_validator("memory", "disk")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value


class AzureMLTargetConfig(FlavorConfig):
    """The `azureml` execution target: one Azure ML command job per isolated checkpoint call.

    Credentials come from `DefaultAzureCredential` (environment, workload identity, managed
    identity, `az login`); nothing secret is written here.
    """

    subscription_id: str = Field(description="Azure subscription id of the workspace")
    resource_group: str = Field(description="Resource group of the workspace")
    workspace: str = Field(description="Azure ML workspace name")
    image: str = Field(description="Container image with kitaru, the store's plugin and the project's "
                       "dependencies (`kitaru image dockerfile`); the job's environment is built from it")
    compute: str | None = Field(
        default=None,
        description="Compute cluster the jobs run on; None: serverless compute of `instance_type`",
    )
    instance_type: str | None = Field(
        default=None,
        description="VM size of each node, e.g. Standard_DS3_v2 (required for serverless compute)",
    )
    instance_count: int = Field(default=1, ge=1, description="Nodes per job")
    capacity: AzureMLCapacity | None = Field(
        default=None,
        description="cpu / memory / gpu / disk of one node of the instance type: the call's resources "
                    "are checked against it; None: cpu, memory and disk are not checked, a GPU is refused",
    )
    job_tier: Literal["Spot", "Basic", "Standard", "Premium"] | None = Field(
        default=None, description="Serverless job tier (Spot: cheaper, may be preempted)"
    )
    identity: Literal["managed", "user", "aml_token"] | None = Field(
        default=None,
        description="Identity the job runs as (and reads the store with): the compute's managed "
                    "identity, the submitting user, or an AML token; None: the service's default",
    )
    identity_client_id: str | None = Field(
        default=None, description="Client id of a user-assigned managed identity (identity: managed)"
    )
    experiment_name: str = Field(default="kitaru", description="Experiment the jobs are grouped under")
    python: str = Field(default="python", description="Python command inside the image")
    env: dict[str, str] = Field(default_factory=dict, description="Extra (non-secret) environment variables")
    pass_env: list[str] = Field(
        default_factory=list,
        description="Runner variables the store config names as ${env:NAME} that are not secret and may "
                    "be copied into the job's environment variables (which whoever may read the job sees)",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on each job")
    shm_size: str | None = Field(default=None, description="Docker shared memory size, e.g. '2g'")
    poll_cap: float = Field(
        default=10.0, gt=0, le=60, description="Longest pause in seconds between two polls of a running job"
    )
    endpoint: str | None = Field(
        default=None,
        description="Send every request of the Azure SDK to this base URL instead of Azure's hosts: an "
                    "https proxy, or a local double (http on a loopback address, with a placeholder "
                    "token); default: $KITARU_AZUREML_ENDPOINT, else Azure",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AzureMLTargetConfig:
        if self.compute is None and self.instance_type is None:
            raise ValueError("set `compute` (a compute cluster) or `instance_type` (serverless compute, "
                             "e.g. Standard_DS3_v2)")
        if self.job_tier is not None and self.compute is not None:
            raise ValueError("`job_tier` applies to serverless compute only; drop it or drop `compute`")
        if self.identity_client_id and self.identity != "managed":
            raise ValueError("`identity_client_id` needs `identity: managed`")
        if self.endpoint is not None:
            check_endpoint(self.endpoint)
        return self


def check_endpoint(url: str) -> bool:
    """True for a local double (http on a loopback address), False for an https URL; else a
    ValueError (a bearer token never travels over plain http to another host)."""
    split = urlsplit(url)
    if split.scheme == "https" and split.hostname:
        return False
    if split.scheme == "http" and split.hostname in ("127.0.0.1", "localhost", "::1"):
        return True
    raise ValueError(f"the Azure ML endpoint {url!r} must be https://HOST (a proxy) or "
                     "http://127.0.0.1:PORT (a local double)")
