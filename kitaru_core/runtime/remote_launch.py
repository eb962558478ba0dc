"""The launch of a flow body on another machine (an orchestrator with `locality = "network"`).

A remote runner gets no value of the launching machine: no interpreter path, folder or
kitaru home. Its command line carries only the entrypoint, the registry's and the artifact
store's flavor and config (as the stack file wrote them: `${env:NAME}` unresolved) and the
reference of the flow's code: a code package in the store, or the code in the image with
the digest it must have. The runner reads the execution (and its frozen stack) from the
registry, the code from the store or its image, and continues the flow body:

    python -m kitaru_core.entrypoint resume EXEC_ID \\
        --registry-flavor postgres --registry-config '{"url":"${env:KITARU_DB_URL}"}' \\
        --store-flavor s3 --store-config '{"path":"s3://acme/kitaru"}' --code-package SHA256
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..code_source import code_source
from .code_package import code_digest, code_package, is_installed

if TYPE_CHECKING:
    from ..records import ExecutionRecord
    from ..stack import Stack

#: What stands for the image's interpreter in a remote runner's command (`command[0]`).
IMAGE_PYTHON = "python"


def with_code(flow_ref: dict[str, Any], stack: Stack) -> dict[str, Any]:
    """`flow_ref` plus where a remote runner finds its code: the code package's key (uploaded
    here, once per content) or, with `code: {source: image}`, the path and digest in the image.
    Unchanged for installed code (the image installs it) or a flow with no file."""
    root = flow_ref.get("root")
    if not root or is_installed(Path(root)):
        return flow_ref
    code = code_source(stack.spec)
    if code.in_image:
        return {**flow_ref, "code_image": {"path": code.path, "digest": code_digest(Path(root))}}
    package = code_package(Path(root))
    if package is None:
        return flow_ref
    data, key = package
    stack.artifact_store.put_blob(data, key)
    return {**flow_ref, "code_package": key}


def runner_command(record: ExecutionRecord, stack: Stack, mode: str) -> list[str]:
    """The remote runner's command line (`IMAGE_PYTHON` first) for `mode` ("resume", "retry")."""
    def config(ctype: str) -> str:
        return json.dumps(stack.spec[ctype].get("config") or {}, sort_keys=True, separators=(",", ":"))

    command = [
        IMAGE_PYTHON, "-m", "kitaru_core.entrypoint", mode, record.exec_id,
        "--registry-flavor", stack.spec["registry"]["flavor"], "--registry-config", config("registry"),
        "--store-flavor", stack.spec["artifact_store"]["flavor"], "--store-config", config("artifact_store"),
    ]
    ref = record.flow_ref or {}
    if ref.get("code_package"):
        command += ["--code-package", str(ref["code_package"])]
    elif ref.get("code_image"):
        command += ["--code-image", str(ref["code_image"]["path"]),
                    "--code-digest", str(ref["code_image"]["digest"])]
    return command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The entrypoint's options for a remote runner (see the module docstring)."""
    parser.add_argument("--registry-flavor", help="the registry's flavor (a remote runner)")
    parser.add_argument("--registry-config", type=json.loads, default=None,
                        help="the registry's config as JSON (${env:NAME} resolved here)")
    parser.add_argument("--store-flavor", help="the artifact store's flavor")
    parser.add_argument("--store-config", type=json.loads, default=None,
                        help="the artifact store's config as JSON (${env:NAME} resolved here)")
    parser.add_argument("--code-package", help="store key of the flow's code package")
    parser.add_argument("--code-image", help="folder of the flow's code in this image")
    parser.add_argument("--code-digest", help="the digest the code in the image must have")


def remote_stack(ns: argparse.Namespace, exec_id: str) -> Stack:
    """The execution's frozen stack with the registry and store of the command line; the
    flow's code (unpacked from the store, or checked in the image) is imported from there."""
    from ..errors import ConfigError
    from ..home import home_dir
    from ..plugins.manager import default_manager
    from ..stack import DEFAULT_COMPONENTS, Stack, get_stack
    from . import loader

    if not (ns.registry_flavor and ns.store_flavor):
        raise ConfigError("a remote runner needs both --registry-flavor and --store-flavor")
    given = {
        "registry": {"flavor": ns.registry_flavor, "config": ns.registry_config or {}},
        "artifact_store": {"flavor": ns.store_flavor, "config": ns.store_config or {}},
    }
    probe = Stack(spec={"name": "runner", **DEFAULT_COMPONENTS, **given}, home=home_dir(),
                  manager=default_manager())
    try:
        frozen = probe.registry.get_execution(exec_id).stack or {}
    finally:
        probe.close()
    stack = get_stack(spec={**frozen, **given})
    store = stack.artifact_store
    if ns.code_package:
        from .code_package import extract_code_package

        loader.use_code_root(lambda: extract_code_package(store, ns.code_package))
    elif ns.code_image:
        from .image_code import image_code_root

        ref = {"path": ns.code_image, "digest": ns.code_digest or ""}
        loader.use_code_root(lambda: image_code_root(ref))
    return stack
