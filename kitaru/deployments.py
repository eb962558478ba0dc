"""Deployments: immutable, numbered snapshots of a flow, and the tags that route to them.

A deployment version is one registry document (kind `deployment`, name `<flow>:<version>`)
written once and never changed: the flow's code package (content-addressed in the
artifact store), its entrypoint, the frozen stack, the Python and package versions, the
deploy-time input defaults and run options. Tags live in one document per flow (kind
`deployment-tags`, name `<flow>`), so moving a tag (a promotion, a rollback) is one
compare-and-set write, and every reader sees the tag on exactly one side of the move.

Tags follow Kitaru 0.21: an *exclusive* tag points at one version (setting it on another
version moves it), a *shared* tag labels any number of versions and routes only while it
labels one. `default` is reserved: always exclusive, set on version 1 unless asked not to,
never removed (only moved), and the route used when neither a tag nor a version is given.
A version that holds an exclusive tag can't be deleted. Version numbers are never reused:
the tags document keeps the highest one handed out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import (
    DeploymentNotFoundError,
    DocumentConflictError,
    InvalidStateError,
    InvalidValueError,
)
from kitaru_core.records import DocumentRecord

from .client import _dt, _Model

if TYPE_CHECKING:
    from kitaru_core.interfaces import Registry
    from kitaru_core.stack import Stack

    from .client import KitaruClient
    from .flows import Flow, FlowHandle

KIND = "deployment"
TAGS_KIND = "deployment-tags"
DEFAULT_TAG = "default"
#: Flow inputs that `flow.deploy(...)` and `flow.invoke(...)` take as their own options.
CONTROL_KEYS = frozenset({"stack", "image", "cache", "retries", "tags", "version", "tag",
                          "publish_default_on_first_deploy"})
_MAX_CAS_TRIES = 100
_NAME = re.compile(r"^[^\s:/][^:/]{0,199}$")


# -- names -------------------------------------------------------------------------------------


def check_flow_name(flow: str) -> str:
    """`flow` stripped; `InvalidValueError` when it can't name deployments."""
    name = flow.strip() if isinstance(flow, str) else ""
    if not _NAME.match(name):
        raise InvalidValueError(
            f"{flow!r} can't name a deployed flow: give the flow's name (1-200 characters, "
            "no ':' or '/')"
        )
    return name


def check_tag(tag: str) -> str:
    """`tag` stripped; `InvalidValueError` for an empty or malformed tag."""
    name = tag.strip() if isinstance(tag, str) else ""
    if not _NAME.match(name):
        raise InvalidValueError(
            f"deployment tag {tag!r} is not valid: use 1-200 characters without ':' or '/' "
            "(like production, canary)"
        )
    return name


def check_version(version: Any) -> int:
    """`version` as an int >= 1; `InvalidValueError` otherwise."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidValueError(f"deployment version {version!r} is not valid: give a number >= 1")
    return version


def as_tags(tags: Mapping[str, bool] | Iterable[str] | str | None) -> dict[str, bool]:
    """Tags as {tag: exclusive}. A name given alone (a string, or in a list) is exclusive:
    routing tags such as `production` should point at one version; `{"label": False}`
    makes a shared one. `default` is always exclusive."""
    if tags is None:
        return {}
    if isinstance(tags, str):
        tags = [tags]
    pairs = tags.items() if isinstance(tags, Mapping) else ((t, True) for t in tags)
    out: dict[str, bool] = {}
    for tag, exclusive in pairs:
        name = check_tag(tag)
        out[name] = True if name == DEFAULT_TAG else bool(exclusive)
    return out


def document_name(flow: str, version: int) -> str:
    return f"{flow}:{version}"


# -- what a deployment looks like to users -----------------------------------------------------


@dataclass
class Deployment(_Model):
    """One deployment version of a flow (Kitaru 0.21's `Deployment` shape, plus the snapshot).

    `tags` maps each tag on this version to whether it is exclusive. `invoke(**inputs)`,
    `add_tag`, `remove_tag` and `delete` act on this exact version.
    """

    deployment_id: str
    flow: str
    version: int
    tags: dict[str, bool]
    created_at: datetime | None
    entrypoint: str
    code_package: str
    stack: str | None
    stack_spec: dict[str, Any]
    python: str
    packages: dict[str, str]
    defaults: dict[str, Any]
    options: dict[str, Any]
    parameters: list[dict[str, Any]]
    schema: dict[str, Any] | None
    commit_sha: str | None = None
    commit_dirty: bool | None = None
    image_digest: str | None = None
    _body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _client: KitaruClient | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, doc: DocumentRecord, tags: dict[str, bool], client: KitaruClient | None = None
           ) -> Deployment:
        body = doc.body
        entry = body.get("entrypoint") or {}
        source = body.get("source") or {}
        return cls(
            deployment_id=doc.name, flow=body["flow"], version=int(body["version"]), tags=tags,
            created_at=_dt(doc.created_at),
            entrypoint=f"{entry.get('import_name') or entry.get('module')}:{entry.get('qualname')}",
            code_package=(body.get("code") or {}).get("package", ""),
            stack=(body.get("stack") or {}).get("name"), stack_spec=body.get("stack") or {},
            python=body.get("python", ""), packages=dict(body.get("packages") or {}),
            defaults=dict(body.get("defaults") or {}), options=dict(body.get("options") or {}),
            parameters=list(body.get("parameters") or []), schema=body.get("schema"),
            commit_sha=source.get("commit_sha"), commit_dirty=source.get("commit_dirty"),
            _body=body, _client=client,
        )

    def _api(self) -> DeploymentsAPI:
        from .client import KitaruClient

        return (self._client or KitaruClient()).deployments

    def invoke(self, **inputs: Any) -> FlowHandle:
        """Start an execution of this exact version with `inputs` over its defaults."""
        return self._api().invoke(flow=self.flow, version=self.version, inputs=inputs)

    def add_tag(self, tag: str, *, exclusive: bool = False) -> Deployment:
        """Put `tag` on this version (`exclusive`: move it here from any other version)."""
        return self._api().tag(flow=self.flow, version=self.version, tag=tag, exclusive=exclusive)

    def remove_tag(self, tag: str) -> Deployment:
        """Take `tag` off this version (`default` can't be removed, only moved)."""
        return self._api().untag(flow=self.flow, version=self.version, tag=tag)

    def delete(self) -> None:
        """Delete this version (refused while it holds an exclusive tag)."""
        self._api().delete(flow=self.flow, version=self.version)


@dataclass
class DeployedFlow(_Model):
    """A flow with deployment versions (`kitaru flow list`)."""

    flow: str
    versions: list[int]
    latest_version: int
    tags: dict[str, list[int]]


# -- the registry side ----------------------------------------------------------------------------


class DeploymentStore:
    """Deployment versions and tags as registry documents (see the module docstring)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # versions
    def versions(self, flow: str) -> list[DocumentRecord]:
        """The version documents of `flow`, oldest first."""
        prefix = f"{flow}:"
        docs = [d for d in self.registry.list_documents(KIND, prefix=prefix)
                if d.name[len(prefix):].isdigit()]
        return sorted(docs, key=lambda d: int(d.body["version"]))

    def version(self, flow: str, version: int) -> DocumentRecord:
        doc = self.registry.get_document(KIND, document_name(flow, version))
        if doc is None:
            raise DeploymentNotFoundError(self._missing(flow, f"version {version}"))
        return doc

    def flows(self) -> list[str]:
        """Every flow with at least one version, sorted."""
        return sorted({d.body["flow"] for d in self.registry.list_documents(KIND)})

    def create(self, flow: str, body: dict[str, Any], tags: dict[str, bool], *,
               publish_default: bool = True) -> tuple[DocumentRecord, dict[str, bool]]:
        """Write `body` as the next version of `flow` and put `tags` on it.

        Two deploys racing both succeed with distinct versions: each claims its number
        with a create-only write. (document, its tags) is returned.
        """
        for _ in range(_MAX_CAS_TRIES):
            taken = [int(d.body["version"]) for d in self.versions(flow)]
            state = self._tags_document(flow)
            last = max([*taken, int((state.body if state else {}).get("last_version", 0))], default=0)
            version = last + 1
            try:
                doc = self.registry.put_document(
                    KIND, document_name(flow, version),
                    {**body, "flow": flow, "version": version}, expected_version=0,
                )
                break
            except DocumentConflictError:
                continue
        else:  # pragma: no cover - a hundred deploys of one flow at the same moment
            raise InvalidStateError(f"flow {flow!r} is being deployed too often at once; try again")
        wanted = dict(tags)
        if publish_default and version == 1:
            wanted[DEFAULT_TAG] = True

        def apply(state: dict[str, Any]) -> None:
            state["last_version"] = max(int(state.get("last_version", 0)), version)
            for tag, exclusive in wanted.items():
                _set_tag(state, flow, tag, version, exclusive)

        state = self._update_tags(flow, apply)
        return doc, tags_of(state, version)

    def delete(self, flow: str, version: int) -> None:
        """Remove a version and its shared tags; refused while it holds an exclusive tag."""
        self.version(flow, version)

        def apply(state: dict[str, Any]) -> None:
            held = tags_of(state, version)
            exclusive = sorted(t for t, ex in held.items() if ex)
            if exclusive:
                raise InvalidStateError(
                    f"deployment {flow!r} v{version} holds exclusive tag(s) {', '.join(exclusive)}; "
                    f"move them to another version first (`kitaru flow tag {flow} TAG --version N "
                    "--exclusive`)"
                )
            for tag in held:
                _drop_tag(state, tag, version)

        self._update_tags(flow, apply)
        self.registry.delete_document(KIND, document_name(flow, version))

    # tags
    def tags(self, flow: str) -> dict[str, Any]:
        """The tags document's body of `flow` ({} without one)."""
        doc = self._tags_document(flow)
        return doc.body if doc else {}

    def tag(self, flow: str, version: int, tag: str, exclusive: bool) -> dict[str, bool]:
        """Put `tag` on a version; the version's tags afterwards."""
        self.version(flow, version)
        state = self._update_tags(flow, lambda s: _set_tag(s, flow, tag, version, exclusive))
        return tags_of(state, version)

    def untag(self, flow: str, version: int, tag: str) -> dict[str, bool]:
        """Take `tag` off a version (nothing if it is not there); the version's tags afterwards."""
        if tag == DEFAULT_TAG:
            raise InvalidStateError(
                f"the `default` tag can't be removed, only moved: `kitaru flow tag {flow} default "
                "--version N --exclusive`"
            )
        self.version(flow, version)
        state = self._update_tags(flow, lambda s: _drop_tag(s, tag, version))
        return tags_of(state, version)

    def resolve(self, flow: str, *, version: int | None = None, tag: str | None = None
                ) -> DocumentRecord:
        """The version a selector names: `version`, else `tag`, else the `default` tag."""
        if version is not None and tag is not None:
            raise InvalidValueError("give a deployment version or a tag, not both")
        if version is not None:
            return self.version(flow, check_version(version))
        implicit = tag is None
        tag = DEFAULT_TAG if tag is None else check_tag(tag)
        routes = (self.tags(flow).get("tags") or {}).get(tag) or {}
        if not routes:
            if not self.versions(flow):
                raise DeploymentNotFoundError(
                    f"flow {flow!r} has no deployments; deploy it first (`flow.deploy(...)` or "
                    f"`kitaru flow deploy MODULE:{flow}`)"
                )
            if implicit:
                raise DeploymentNotFoundError(
                    f"flow {flow!r} has deployments, but none holds the `default` tag; invoke one "
                    f"with a tag or version, or move `default` (`kitaru flow tag {flow} default "
                    "--version N --exclusive`)"
                )
            raise DeploymentNotFoundError(self._missing(flow, f"tag {tag!r}"))
        if len(routes) > 1:
            versions = ", ".join(f"v{v}" for v in sorted(map(int, routes)))
            raise InvalidStateError(
                f"deployment tag {tag!r} of flow {flow!r} labels several versions ({versions}); "
                "invoke a version, or make the tag exclusive on one (`--exclusive`)"
            )
        return self.version(flow, int(next(iter(routes))))

    # internals
    def _tags_document(self, flow: str) -> DocumentRecord | None:
        return self.registry.get_document(TAGS_KIND, flow)

    def _update_tags(self, flow: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply `change` to the flow's tags document in one compare-and-set (retried)."""
        for _ in range(_MAX_CAS_TRIES):
            doc = self._tags_document(flow)
            state = _copy(doc.body) if doc else {"flow": flow, "last_version": 0, "tags": {}}
            state.setdefault("tags", {})
            change(state)
            state["updated_at"] = time.time()
            try:
                return self.registry.put_document(
                    TAGS_KIND, flow, state, expected_version=doc.version if doc else 0
                ).body
            except DocumentConflictError:
                continue
        raise InvalidStateError(  # pragma: no cover
            f"the tags of flow {flow!r} change too often to be updated; try again"
        )

    def _missing(self, flow: str, what: str) -> str:
        known = [int(d.body["version"]) for d in self.versions(flow)]
        listed = ", ".join(f"v{v}" for v in known) or "none"
        return f"flow {flow!r} has no deployment {what} (versions: {listed}); see `kitaru flow " \
               f"deployments list {flow}`"


def tags_of(state: dict[str, Any], version: int) -> dict[str, bool]:
    """{tag: exclusive} of one version in a tags document's body."""
    key = str(version)
    return {tag: bool(routes[key]) for tag, routes in sorted((state.get("tags") or {}).items())
            if key in routes}


def _set_tag(state: dict[str, Any], flow: str, tag: str, version: int, exclusive: bool) -> None:
    tags = state["tags"]
    routes = tags.get(tag) or {}
    if exclusive:
        tags[tag] = {str(version): True}
        return
    others = [int(v) for v, ex in routes.items() if ex and int(v) != version]
    if others:
        raise InvalidStateError(
            f"tag {tag!r} of flow {flow!r} is exclusive on v{others[0]}; move it with "
            f"`--exclusive`, or take it off v{others[0]} first"
        )
    tags[tag] = {**{v: ex for v, ex in routes.items()}, str(version): False}


def _drop_tag(state: dict[str, Any], tag: str, version: int) -> None:
    routes = (state.get("tags") or {}).get(tag)
    if routes and str(version) in routes:
        del routes[str(version)]
        if not routes:
            del state["tags"][tag]


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "tags": {t: dict(r) for t, r in (body.get("tags") or {}).items()}}


# -- the client's namespace --------------------------------------------------------------------------


class DeploymentsAPI:
    """`KitaruClient().deployments`: Kitaru 0.21's deployment operations (keyword arguments)."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    @property
    def _stack(self) -> Stack:
        return self._client._stack

    @property
    def _store(self) -> DeploymentStore:
        return DeploymentStore(self._stack.registry)

    def _wrap(self, doc: DocumentRecord, tags: dict[str, bool] | None = None) -> Deployment:
        if tags is None:
            tags = tags_of(self._store.tags(doc.body["flow"]), int(doc.body["version"]))
        return Deployment.of(doc, tags, self._client)

    def deploy(
        self, target: str | Flow, *, inputs: Mapping[str, Any] | None = None,
        tags: Mapping[str, bool] | Iterable[str] | str | None = None, stack: str | None = None,
        image: Any = None, cache: bool | None = None, retries: int | None = None,
        publish_default_on_first_deploy: bool = True,
    ) -> Deployment:
        """Deploy a flow (a `Flow`, or a target `path/to/file.py:flow` / `module:flow`) as its
        next version; `inputs` are the defaults invocations start from."""
        from .flow_targets import load_flow_target

        flow = load_flow_target(target) if isinstance(target, str) else target
        given = dict(inputs or {})
        clash = sorted(CONTROL_KEYS & set(given))
        if clash:
            raise InvalidValueError(
                f"inputs name deployment option(s) {', '.join(clash)}; pass them as options instead"
            )
        return deploy_flow(
            flow, given, stack=stack, image=image, cache=cache, retries=retries, tags=tags,
            publish_default=publish_default_on_first_deploy, client=self._client,
        )

    def list(self, *, flow: str | None = None) -> list[Deployment]:
        """Deployment versions, by flow then version (of one flow when given)."""
        store = self._store
        flows = [check_flow_name(flow)] if flow is not None else store.flows()
        out: list[Deployment] = []
        for name in flows:
            state = store.tags(name)
            out += [self._wrap(d, tags_of(state, int(d.body["version"]))) for d in store.versions(name)]
        return out

    def flows(self) -> list[DeployedFlow]:
        """Flows with deployment versions, each with its versions and where its tags point."""
        store = self._store
        out = []
        for name in store.flows():
            versions = [int(d.body["version"]) for d in store.versions(name)]
            routes = (store.tags(name).get("tags") or {})
            tags = {t: sorted(int(v) for v in r) for t, r in sorted(routes.items())}
            out.append(DeployedFlow(flow=name, versions=versions, latest_version=max(versions),
                                    tags=tags))
        return out

    def get(self, *, flow: str, version: int | None = None, tag: str | None = None) -> Deployment:
        """One version: by `version`, else by `tag`, else the one holding `default`."""
        return self._wrap(self._store.resolve(check_flow_name(flow), version=version, tag=tag))

    def invoke(
        self, *, flow: str, version: int | None = None, tag: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> FlowHandle:
        """Start an execution of a version (by `version`, `tag`, else `default`) with `inputs`
        over its deployed defaults; returns its handle at once (`.wait()` for the result).

        The execution runs the version's snapshot of the code, through its frozen stack's
        orchestrator, whatever the working tree holds now."""
        from . import deploy_snapshot

        doc = self._store.resolve(check_flow_name(flow), version=version, tag=tag)
        return deploy_snapshot.start(doc.body, self._stack, dict(inputs or {}))

    def tag(self, *, flow: str, version: int, tag: str, exclusive: bool = False) -> Deployment:
        """Put `tag` on a version; `exclusive` moves it here from any other version (a
        promotion or a rollback is this one write). `default` is always exclusive."""
        name, number, tag = check_flow_name(flow), check_version(version), check_tag(tag)
        tags = self._store.tag(name, number, tag, exclusive or tag == DEFAULT_TAG)
        return self._wrap(self._store.version(name, number), tags)

    def untag(self, *, flow: str, version: int, tag: str) -> Deployment:
        """Take `tag` off a version (`default` can't be removed, only moved)."""
        name, number, tag = check_flow_name(flow), check_version(version), check_tag(tag)
        tags = self._store.untag(name, number, tag)
        return self._wrap(self._store.version(name, number), tags)

    def delete(self, *, flow: str, version: int) -> None:
        """Delete a version; refused while it holds an exclusive tag (move the tag first).
        Its code package stays in the store for executions that ran it (`kitaru gc` frees
        packages nothing references)."""
        self._store.delete(check_flow_name(flow), check_version(version))


def deploy_flow(
    flow: Flow, defaults: dict[str, Any], *, args: tuple[Any, ...] = (), stack: str | None = None,
    image: Any = None, cache: bool | None = None, retries: int | None = None,
    tags: Mapping[str, bool] | Iterable[str] | str | None = None, publish_default: bool = True,
    client: KitaruClient | None = None,
) -> Deployment:
    """Snapshot `flow` on its stack and record it as the flow's next version."""
    from . import deploy_snapshot
    from .client import KitaruClient

    wanted = as_tags(tags)
    spec = flow._resolved(image, cache, retries)
    built = client._stack if client is not None and stack is None else flow._stack(stack)
    name = check_flow_name(spec.name)
    body = deploy_snapshot.build(spec, built, args, defaults)
    doc, placed = DeploymentStore(built.registry).create(name, body, wanted,
                                                         publish_default=publish_default)
    return Deployment.of(doc, placed, client or KitaruClient.for_stack(built))
