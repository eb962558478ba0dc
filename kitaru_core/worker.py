"""Run one isolated checkpoint call from a task spec.

`python -m kitaru_core.worker --store-flavor F --store-config JSON --spec KEY`
(`runtime.protocol.worker_argv`). The worker needs the artifact store and nothing
else: no registry, no credentials beyond the store's (its `${env:...}` references
are resolved here, from the task's environment). It reads the spec and inputs
through the store plugin, checks that its kitaru and Python versions are the
runner's, writes the output artifact, then `result.json` last, which is the
commit marker the runner waits for.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

from .errors import KitaruError
from .interfaces import ArtifactStore, ComponentContext
from .runtime.code_package import extract_code_package
from .runtime.protocol import PROTOCOL_VERSION, parse_worker_args
from .runtime.specs import checkpoint_spec_of
from .runtime.state import current_call
from .serializers import deserialize, serialize, serialize_chunks, type_name


class WorkerCall:
    """The call context inside a worker: `kitaru.save` and `kitaru.log` land in result.json."""

    def __init__(self, spec: dict[str, Any], store: ArtifactStore) -> None:
        self.spec = spec
        self.store = store
        self.exec_id = spec["exec_id"]
        self.saved: list[dict[str, Any]] = []
        self.metadata: dict[str, Any] = {}
        self.event_counts: dict[str, int] = {}  # child events per name (runtime/events.py)

    def save(self, name: str, value: Any, type: str | None = None) -> dict[str, Any]:
        entry = _put(self.store, value)
        entry["name"] = name
        entry["metadata"] = {"artifact_type": type} if type else None
        self.saved.append(entry)
        return entry

    def log(self, values: dict[str, Any]) -> None:
        self.metadata.update(values)


def main(argv: list[str] | None = None) -> int:
    ns = parse_worker_args(argv)
    store = build_store(ns.store_flavor, ns.store_config, os.environ.get("KITARU_DURABILITY", "default"))
    raw = store.read_file(ns.spec)
    if raw is None:
        print(f"kitaru worker: no task spec at {ns.spec!r} in the {ns.store_flavor!r} store; "
              "the runner writes it before submitting: check the store config", file=sys.stderr)
        return 2
    spec = json.loads(raw)
    prefix = spec["prefix"]
    try:
        check_versions(spec)
        fn = load_function(spec["function"], store)
        values = {
            name: deserialize(store.get_blob(ref["key"]), ref["serializer"])
            for name, ref in spec["inputs"].items()
        }
        call = WorkerCall(spec, store)
        token = current_call.set(call)
        try:
            output = fn(*values.values()) if spec.get("positional") else fn(**values)
        finally:
            current_call.reset(token)
        result = {
            "status": "ok",
            "output": _put(store, output),
            "saved": call.saved,
            "metadata": call.metadata,
        }
    except BaseException as exc:
        result = {
            "status": "error",
            "retryable": not isinstance(exc, KitaruError),
            "error": {
                "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "message": str(exc),
                "traceback": traceback.format_exc()[-8000:],
            },
        }
        traceback.print_exc()
    result["finished_at"] = time.time()
    store.write_file(f"{prefix}/result.json", json.dumps(result, default=repr).encode())
    return 0 if result["status"] == "ok" else 1


def prepare_fork(argv: list[str]) -> None:
    """Import what a worker with these arguments will need, in a fork server before it forks.

    The plugins and the store flavor's class (with its SDK's modules); cloudpickle if
    installed. Only imports: no store is built (an SDK's threads and sockets must not be
    forked), and nothing of the user's code is loaded.
    """
    from . import home, stack  # noqa: F401 - what build_store uses
    from .plugins.manager import default_manager

    ns = parse_worker_args(argv)
    flavor = default_manager().flavor("artifact_store", ns.store_flavor)
    cls = flavor.load_class()
    for module in getattr(cls, "fork_preload", ()):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    with contextlib.suppress(ImportError):
        import cloudpickle  # noqa: F401


def _put(store: ArtifactStore, value: Any) -> dict[str, Any]:
    streamed = serialize_chunks(value)
    if streamed is not None:  # a large value: written as it is serialized
        chunks, serializer = streamed
        key, size = store.put_stream(chunks)
        return {"key": key, "serializer": serializer, "type_name": type_name(value), "size": size}
    data, serializer = serialize(value)
    key = hashlib.sha256(data).hexdigest()
    store.put_blob(data, key)
    return {"key": key, "serializer": serializer, "type_name": type_name(value), "size": len(data)}


def check_versions(spec: dict[str, Any]) -> None:
    """Refuse a spec from a runner with another protocol, kitaru or Python (major.minor) version."""
    from . import __version__

    here = {"protocol": PROTOCOL_VERSION, "kitaru": __version__, "python": list(sys.version_info[:2])}
    theirs = {"protocol": spec.get("version"), "kitaru": spec.get("kitaru"), "python": spec.get("python")}
    if here != theirs:
        raise WorkerVersionError(
            f"this worker has kitaru {here['kitaru']} on Python {here['python']} (protocol "
            f"{here['protocol']}) but the runner has kitaru {theirs['kitaru']} on Python "
            f"{theirs['python']} (protocol {theirs['protocol']}); build the task image from the "
            "runner's versions (`kitaru image dockerfile`)"
        )


class WorkerVersionError(KitaruError):
    """The worker's kitaru or Python differs from the runner's."""


def build_store(flavor_name: str, config: dict[str, Any], durability: str = "default") -> ArtifactStore:
    """The artifact store of this flavor and config, built through the installed plugins."""
    from .home import home_dir
    from .plugins.manager import default_manager
    from .stack import validate_config

    flavor = default_manager().flavor("artifact_store", flavor_name)
    home = home_dir()
    model = validate_config(
        flavor, config or {}, source="worker command line",
        where="artifact_store.config", home=home, resolve_env=True,
    )
    context = ComponentContext(home=home, stack_name="worker", durability=durability)
    return flavor.load_class()(model, context)


def load_function(ref: dict[str, Any], store: ArtifactStore) -> Any:
    """The checkpoint's plain function, by import path or from its cloudpickle.

    Either way the project's code (its package, else its folder) goes on sys.path
    first: a cloudpickle names the project's importable classes by reference.
    """
    if "pickled" in ref:
        import cloudpickle

        here = [sys.version_info[0], sys.version_info[1]]
        if ref.get("python") != here or ref.get("cloudpickle") != cloudpickle.__version__:
            raise KitaruError(
                f"the checkpoint {ref['qualname']!r} was shipped with cloudpickle "
                f"{ref.get('cloudpickle')} on Python {ref.get('python')}, but this worker has "
                f"cloudpickle {cloudpickle.__version__} on Python {here}; use the same image, "
                "or define the function at module level so it is imported by reference"
            )
    root = ref.get("root")
    if ref.get("code_package"):
        root = str(extract_code_package(store, ref["code_package"]))
    elif ref.get("code_image"):
        from .runtime.image_code import image_code_root

        root = str(image_code_root(ref["code_image"]))
    if root and root not in sys.path:
        sys.path.insert(0, root)
    if "pickled" in ref:
        return cloudpickle.loads(store.get_blob(ref["pickled"]))
    obj: Any = importlib.import_module(ref["module"])
    for part in ref["qualname"].split("."):
        obj = getattr(obj, part)
    inner = checkpoint_spec_of(obj)
    return inner.fn if inner is not None else obj


if __name__ == "__main__":
    sys.exit(main())
