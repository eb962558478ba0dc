"""The `server` registry: every Registry method is one HTTP request to a kitaru server,
which runs it on its own registry (so every compare-and-set keeps that registry's atomicity).

One pooled keep-alive `httpx.Client` per process (built on first use, again in a forked
child). A request whose connection could not be made is sent again, whatever the call;
one whose connection broke after it was sent only when the call is repeatable (reads,
`renew_lease`, `create_wait`): the server may have run it already. Errors come back as the
kitaru error type the server's registry raised.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kitaru_core import errors
from kitaru_core.errors import ConfigError, KitaruError
from kitaru_core.interfaces import ComponentContext, FlavorConfig, Registry

from .config import ServerRegistryConfig
from .credentials import stored_key
from .wire import PREFIX, RPCS, dumps

if TYPE_CHECKING:
    import httpx

    from kitaru_core.records import (
        ArtifactRecord,
        CallRecord,
        DocumentRecord,
        ExecutionRecord,
        LogChunk,
        MemoryRecord,
        MetadataEntry,
        WaitRecord,
    )

API = "/api/v1"
#: Seconds an idle pooled connection is kept: below uvicorn's keep-alive (5 s), so the client
#: never sends on a connection the server is closing.
KEEPALIVE_SECONDS = 2.0


class ServerUnavailableError(KitaruError):
    """The kitaru server could not be reached, or failed to answer."""


class ServerAuthError(ConfigError):
    """The kitaru server refused the API key (missing, unknown, expired, or too small a scope)."""


class ServerRegistry(Registry):
    """A kitaru server as the registry (see the module doc)."""

    config: ServerRegistryConfig

    @classmethod
    def reach(cls, config: FlavorConfig) -> str:
        return "network"

    def __init__(self, config: ServerRegistryConfig, context: ComponentContext) -> None:
        super().__init__(config, context)
        self.url = config.url
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._pid = 0
        self._info: dict[str, Any] | None = None

    # -- the connection -------------------------------------------------------------------
    def _api_key(self) -> str | None:
        if self.config.api_key:
            return self.config.api_key
        return stored_key(self.context.home, self.url) or os.environ.get("KITARU_API_KEY") or None

    def _client(self) -> httpx.Client:
        http = self._http
        if http is not None and self._pid == os.getpid():
            return http
        with self._lock:
            if self._http is None or self._pid != os.getpid():
                import httpx

                headers = {"content-type": "application/json", "accept": "application/json",
                           "user-agent": "kitaru-server-registry"}
                key = self._api_key()
                if key:
                    headers["authorization"] = f"Bearer {key}"
                cfg = self.config
                self._http = httpx.Client(
                    base_url=self.url + API, headers=headers,
                    timeout=httpx.Timeout(cfg.timeout, connect=cfg.connect_timeout),
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=16,
                                        keepalive_expiry=KEEPALIVE_SECONDS),
                    verify=cfg.ca_bundle or cfg.verify,
                )
                self._pid = os.getpid()
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None and self._pid == os.getpid():
                self._http.close()
            self._http = None

    def _send(self, path: str, body: bytes | None, *, repeatable: bool) -> Any:
        """POST `body` (GET when None) to `path`; the decoded JSON answer."""
        import httpx

        attempt = 0
        while True:
            http = self._client()
            try:
                resp = http.get(path) if body is None else http.post(path, content=body)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure: Exception = exc  # never sent: any call may go again
            except httpx.TransportError as exc:
                if not repeatable:
                    raise ServerUnavailableError(
                        f"the connection to the kitaru server at {self.url} broke during {path} "
                        f"({type(exc).__name__}: {exc}); it may or may not have been recorded: "
                        "check the execution, then retry"
                    ) from None
                failure = exc
            attempt += 1
            if attempt > self.config.retries:
                raise ServerUnavailableError(
                    f"the kitaru server at {self.url} cannot be reached ({type(failure).__name__}: "
                    f"{failure}); check the URL and that the server runs (`kitaru server start`)"
                ) from None
            time.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))
        if resp.status_code == 200:
            return json.loads(resp.content)
        raise self._error(resp, path)

    def _error(self, resp: httpx.Response, path: str) -> Exception:
        try:
            data = json.loads(resp.content)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        detail = data.get("detail")
        detail = detail if isinstance(detail, str) else resp.text[:300] or resp.reason_phrase
        if resp.status_code in (401, 403):
            return ServerAuthError(
                f"the kitaru server at {self.url} refused the request ({resp.status_code}: {detail}); "
                f"give the stack an API key that allows it (`kitaru login {self.url}`, or "
                "api_key: ${env:KITARU_API_KEY} in the stack file)"
            )
        for name in data.get("kinds") or [data.get("error")]:
            cls = getattr(errors, name, None) if isinstance(name, str) else None
            if isinstance(cls, type) and issubclass(cls, KitaruError):
                try:
                    return cls(detail)
                except TypeError:  # a type with other constructor arguments: try its base
                    continue
        if resp.status_code == 404 and "error" not in data:
            return ServerUnavailableError(
                f"{self.url} has no registry API ({path}: 404); is it a kitaru server with the "
                "`server` registry routes (kitaru-server of the same version)?")
        return ServerUnavailableError(
            f"the kitaru server at {self.url} failed {path} ({resp.status_code}: {detail})")

    def _call(self, method: str, **args: Any) -> Any:
        rpc = RPCS[method]
        answer = self._send(PREFIX + rpc.path, dumps(rpc.encode_args(args)),
                            repeatable=rpc.idempotent)
        return rpc.result.decode(answer.get("result"))

    # -- what the server says about its registry -----------------------------------------
    def info(self) -> dict[str, Any]:
        """The server's registry: its `inline_limit`, flavor and stack (asked once)."""
        if self._info is None:
            self._info = self._send(f"{PREFIX}/info", None, repeatable=True)
        return self._info

    @property  # type: ignore[override]
    def inline_limit(self) -> int:
        """The server registry's limit: values up to it travel inline in the request."""
        return int(self.info().get("inline_limit", 0))

    # -- executions ---------------------------------------------------------------------
    def create_execution(self, record: ExecutionRecord, artifacts: Sequence[ArtifactRecord] = ()) -> None:
        self._call("create_execution", record=record, artifacts=list(artifacts))

    def get_execution(self, exec_id: str) -> ExecutionRecord:
        return self._call("get_execution", exec_id=exec_id)

    def list_executions(
        self, *, flow_name: str | None = None, status: str | None = None, limit: int | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        return self._call("list_executions", flow_name=flow_name, status=status, limit=limit,
                          before=before)

    def claim_execution(self, exec_id: str, *, owner: str, lease_expires: float,
                        expected_version: int) -> bool:
        return self._call("claim_execution", exec_id=exec_id, owner=owner,
                          lease_expires=lease_expires, expected_version=expected_version)

    def renew_lease(self, exec_id: str, *, owner: str, lease_expires: float) -> bool:
        return self._call("renew_lease", exec_id=exec_id, owner=owner, lease_expires=lease_expires)

    def update_execution(
        self, exec_id: str, fields: dict[str, Any], *, owner: str | None = None,
        statuses: tuple[str, ...] | None = None, expected_version: int | None = None,
    ) -> bool:
        return self._call("update_execution", exec_id=exec_id, fields=fields, owner=owner,
                          statuses=statuses, expected_version=expected_version)

    # -- checkpoint calls -----------------------------------------------------------------
    def get_calls(self, exec_id: str) -> list[CallRecord]:
        return self._call("get_calls", exec_id=exec_id)

    def save_call(
        self, call: CallRecord, artifacts: Sequence[ArtifactRecord] = (),
        logs: Sequence[LogChunk] = (), metadata: Sequence[MetadataEntry] = (),
    ) -> None:
        self._call("save_call", call=call, artifacts=list(artifacts), logs=list(logs),
                   metadata=list(metadata))

    def find_cached_call(self, cache_key: str) -> CallRecord | None:
        return self._call("find_cached_call", cache_key=cache_key)

    # -- artifacts ------------------------------------------------------------------------
    def add_artifacts(self, artifacts: list[ArtifactRecord]) -> None:
        self._call("add_artifacts", artifacts=list(artifacts))

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        return self._call("get_artifact", artifact_id=artifact_id)

    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, call_id: str | None = None
    ) -> list[ArtifactRecord]:
        return self._call("list_artifacts", exec_id=exec_id, name=name, call_id=call_id)

    # -- waits ----------------------------------------------------------------------------
    def create_wait(self, wait: WaitRecord) -> WaitRecord:
        return self._call("create_wait", wait=wait)

    def get_waits(self, exec_id: str) -> list[WaitRecord]:
        return self._call("get_waits", exec_id=exec_id)

    def pending_waits(self, exec_ids: Sequence[str]) -> list[WaitRecord]:
        if "pending_waits" not in self.info().get("methods", ()):  # a server older than this
            return super().pending_waits(exec_ids)
        return self._call("pending_waits", exec_ids=list(exec_ids))

    def answer_wait(self, exec_id: str, name: str, value: Any) -> bool:
        return self._call("answer_wait", exec_id=exec_id, name=name, value=value)

    def suspend_at_wait(self, exec_id: str, *, owner: str, wait_name: str) -> bool:
        return self._call("suspend_at_wait", exec_id=exec_id, owner=owner, wait_name=wait_name)

    # -- logs and metadata ----------------------------------------------------------------
    def append_logs(self, chunks: list[LogChunk]) -> None:
        self._call("append_logs", chunks=list(chunks))

    def get_logs(self, exec_id: str, *, call_id: str | None = None, after: int = 0) -> list[LogChunk]:
        return self._call("get_logs", exec_id=exec_id, call_id=call_id, after=after)

    def add_metadata(self, entries: list[MetadataEntry]) -> None:
        self._call("add_metadata", entries=list(entries))

    def get_metadata(self, exec_id: str) -> list[MetadataEntry]:
        return self._call("get_metadata", exec_id=exec_id)

    # -- housekeeping ---------------------------------------------------------------------
    def delete_executions(self, exec_ids: Sequence[str]) -> int:
        return self._call("delete_executions", exec_ids=list(exec_ids))

    def referenced_blob_keys(self) -> set[str]:
        return self._call("referenced_blob_keys")

    def check_integrity(self, *, full: bool = False) -> list[str] | None:
        return self._call("check_integrity", full=full)

    # -- memory ---------------------------------------------------------------------------
    def put_memory(self, record: MemoryRecord, artifact: ArtifactRecord | None) -> MemoryRecord:
        return self._call("put_memory", record=record, artifact=artifact)

    def get_memory(self, scope: str, key: str, version: int | None = None) -> MemoryRecord | None:
        return self._call("get_memory", scope=scope, key=key, version=version)

    def list_memory(self, scope: str, *, include_deleted: bool = False) -> list[MemoryRecord]:
        return self._call("list_memory", scope=scope, include_deleted=include_deleted)

    def memory_history(self, scope: str, key: str) -> list[MemoryRecord]:
        return self._call("memory_history", scope=scope, key=key)

    def list_memory_scopes(self) -> list[str]:
        return self._call("list_memory_scopes")

    # -- documents ------------------------------------------------------------------------
    def put_document(self, kind: str, name: str, body: dict[str, Any], *,
                     expected_version: int | None = None) -> DocumentRecord:
        return self._call("put_document", kind=kind, name=name, body=body,
                          expected_version=expected_version)

    def get_document(self, kind: str, name: str) -> DocumentRecord | None:
        return self._call("get_document", kind=kind, name=name)

    def list_documents(self, kind: str, *, prefix: str = "") -> list[DocumentRecord]:
        return self._call("list_documents", kind=kind, prefix=prefix)

    def delete_document(self, kind: str, name: str, *, expected_version: int | None = None) -> bool:
        return self._call("delete_document", kind=kind, name=name, expected_version=expected_version)
