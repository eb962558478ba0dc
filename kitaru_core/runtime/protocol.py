"""The names and command line of the remote protocol (v2) that runner, targets and worker share.

- `task_name(exec_id, call_id, attempt)`: the deterministic name of one attempt of one
  isolated call, a DNS-1123 label of at most 63 characters;
- `task_prefix(...)`: the store folder of that attempt (`spec.json`, `result.json`);
- `worker_argv(...)` / `parse_worker_args(...)`: the worker's command line, which carries
  the artifact store's flavor and config (`${env:...}` unresolved) and the spec's key,
  nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from typing import Any

#: Version of the task spec and result files; a worker refuses a spec of another version.
PROTOCOL_VERSION = 2
#: Longest task name: a Kubernetes label value / DNS-1123 label.
MAX_TASK_NAME = 63
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def task_name(exec_id: str, call_id: str, attempt: int) -> str:
    """`kitaru-<exec8>-<call slug>-<attempt>-<hash8>`: unique per (execution, call, attempt).

    The slug is the call id lowercased with every run of other characters made one `-`
    (`Summarize#2` -> `summarize-2`), shortened to fit 63 characters; the hash
    (sha256 of the three parts) keeps names unique when slugs collide or are cut.
    """
    digest = hashlib.sha256(f"{exec_id}\0{call_id}\0{attempt}".encode()).hexdigest()[:8]
    head = _slug(exec_id)[:8] or "x"
    tail = f"-{attempt}-{digest}"
    room = MAX_TASK_NAME - len("kitaru-") - len(head) - 1 - len(tail)
    slug = _slug(call_id)[:room].strip("-") or "call"
    return f"kitaru-{head}-{slug}{tail}"


def is_task_name(name: str) -> bool:
    """True for a valid DNS-1123 label of at most 63 characters."""
    return len(name) <= MAX_TASK_NAME and bool(_DNS_LABEL.match(name))


def _slug(text: str) -> str:
    return _NOT_ALNUM.sub("-", text.lower()).strip("-")


def task_prefix(exec_id: str, call_id: str, attempt: int) -> str:
    """The store folder of one attempt: `tasks/<exec>/<call>/<attempt>` (`#` becomes `-`)."""
    return f"tasks/{exec_id}/{call_id.replace('#', '-')}/{attempt}"


def task_spec(
    *,
    exec_id: str,
    call_id: str,
    checkpoint: str,
    attempt: int,
    task_name: str,
    prefix: str,
    function: dict[str, Any],
    inputs: dict[str, dict[str, str]],
    positional: bool,
) -> dict[str, Any]:
    """The spec.json document of one attempt, stamped with this process's versions.

    `function` is `{"module", "qualname"}` (plus `code_package`, `root`, or `pickled` with
    its versions, see `runtime.isolated.function_reference`); `inputs` maps parameter names
    to `{"key", "serializer"}` of blobs already in the store; `positional` passes them in
    order instead of by name.
    """
    import sys

    from .. import __version__

    return {
        "version": PROTOCOL_VERSION,
        "kitaru": __version__,
        "python": list(sys.version_info[:2]),
        "exec_id": exec_id,
        "call_id": call_id,
        "checkpoint": checkpoint,
        "attempt": attempt,
        "task_name": task_name,
        "prefix": prefix,
        "function": function,
        "inputs": inputs,
        "positional": positional,
    }


def worker_argv(store_flavor: str, store_config: dict[str, Any], spec_key: str) -> tuple[str, ...]:
    """The worker's arguments after the interpreter (`python <argv>`)."""
    return (
        "-m", "kitaru_core.worker",
        "--store-flavor", store_flavor,
        "--store-config", json.dumps(store_config, sort_keys=True, separators=(",", ":")),
        "--spec", spec_key,
    )


def parse_worker_args(argv: list[str] | None) -> argparse.Namespace:
    """`store_flavor`, `store_config` (a dict) and `spec` (a store key) from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m kitaru_core.worker",
        description="Run one isolated checkpoint call from its task spec in the artifact store.",
    )
    parser.add_argument("--store-flavor", required=True, help="the artifact store's flavor")
    parser.add_argument("--store-config", default="{}", type=json.loads,
                        help="the artifact store's config as JSON (${env:NAME} resolved here)")
    parser.add_argument("--spec", required=True, help="store key of the task's spec.json")
    return parser.parse_args(argv)
