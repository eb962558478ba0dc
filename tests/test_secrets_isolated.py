"""Secrets and isolated checkpoints: a `${secret:NAME.KEY}` in the execution target's config is
resolved by the runner (which has the registry) and reaches the worker process only through its
environment; the worker itself has no registry to read secrets from. No value lands in the
record, the artifact store (task specs, results, logs) or any file under the kitaru home."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
import yaml

import kitaru
from kitaru import checkpoint, flow
from kitaru.errors import SecretNotFoundError
from kitaru_core.stack import StackStore

pytestmark = pytest.mark.slow


@checkpoint(runtime="isolated")
def token_digest() -> dict:
    try:
        kitaru.get_secret("agent")
        lookup = "found"
    except SecretNotFoundError as exc:
        lookup = str(exc)
    token = os.environ["AGENT_TOKEN"]
    return {"digest": hashlib.sha256(token.encode()).hexdigest(), "lookup": lookup,
            "pid": os.getpid()}


@flow
def uses_token() -> dict:
    return token_digest().load()


def test_a_stack_secret_reaches_an_isolated_worker_only_through_its_environment(
    client, tmp_path: Path, kitaru_home: Path
) -> None:
    value = f"tok-{uuid.uuid4().hex}"
    client.secrets.set("agent", TOKEN=value)
    stack = tmp_path / "iso-secret.yaml"
    stack.write_text(yaml.safe_dump({
        "name": "iso-secret", "registry": StackStore().get("local")["registry"],  # the secret's
        "execution_target": {"flavor": "process",
                             "config": {"env": {"AGENT_TOKEN": "${secret:agent.TOKEN}"}}},
    }))
    StackStore().register(stack)
    result = uses_token.run(stack="iso-secret").wait(timeout=120)
    assert result["pid"] != os.getpid()  # it ran in a worker process
    assert result["digest"] == hashlib.sha256(value.encode()).hexdigest()
    # The worker has no registry: a secret kept only there is not found in it.
    assert "no secret 'agent'" in result["lookup"] and "no registry" in result["lookup"]
    assert value not in os.environ.get("AGENT_TOKEN", "")
    everything = b"".join(p.read_bytes() for p in sorted(kitaru_home.rglob("*")) if p.is_file())
    assert value.encode() not in everything
