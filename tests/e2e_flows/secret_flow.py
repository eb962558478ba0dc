"""A flow whose checkpoints use a secret from the environment (AGENT_TOKEN) without ever
returning, printing or saving it: they return its sha256 and where they ran.

    KITARU_STACK=k8s python secret_flow.py WORKDIR

`flow.run()` returns at once on an orchestrator that runs the body elsewhere; the script
writes the execution id to WORKDIR/exec_id.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from kitaru import checkpoint, flow


def token_digest() -> str:
    return hashlib.sha256(os.environ["AGENT_TOKEN"].encode()).hexdigest()


@checkpoint
def prepare(topic: str) -> dict:
    print(f"preparing {topic} with the token (digest {token_digest()[:8]})")
    return {"topic": topic, "digest": token_digest(), "pid": os.getpid()}


@checkpoint(runtime="isolated")
def call_tool(topic: str) -> dict:
    print(f"calling the tool for {topic} with the token (digest {token_digest()[:8]})")
    return {"digest": token_digest(), "pid": os.getpid()}


@flow
def secret_work(topic: str) -> dict:
    first = prepare(topic).load()
    second = call_tool(topic).load()
    return {"runner": first, "task": second, "file": __file__}


if __name__ == "__main__":
    handle = secret_work.run("quarterly report")
    (Path(sys.argv[1]) / "exec_id").write_text(handle.exec_id)
