"""Secrets and code of a remote stack end to end (kmock's emulator + the test controller, moto's
S3, PostgreSQL): a runner variable named in `env_from_runner` reaches the flow body's Job and the
isolated call's Job through each Job's own Secret, and its value is in no record, store object,
task spec, Job or pod manifest, log or file under the kitaru home. The flow body runs from the
code package in the store, in a folder where the project is not."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, wait_for_status
from emulators import Emulator, store_config, worker_env

import kitaru

pytestmark = pytest.mark.slow


@pytest.fixture
def s3(s3_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in {**s3_emulator.env, **worker_env(s3_emulator)}.items():
        monkeypatch.setenv(name, value)
    return s3_emulator


def everything_in_the_bucket(s3: Emulator, prefix: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3.endpoint, skip_instance_cache=True)
    return {path: fs.cat_file(path) for path in fs.find(prefix.removeprefix("s3://"))}


def everything_in_the_record(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        return "\n".join(str(row[0]) for table in tables
                         for row in conn.execute(f'SELECT t::text FROM "{table}" t'))


def test_runner_secrets_reach_the_jobs_only_through_their_secrets(
    tmp_path: Path, kube_cluster: Any, s3: Emulator, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
    kitaru_home: Path,
) -> None:
    server, controller = kube_cluster
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("AGENT_TOKEN", token)
    monkeypatch.setenv("KITARU_TEST_DB_URL", postgres_url)
    monkeypatch.setenv("KITARU_STACK", "k8s")
    empty = tmp_path / "image-workdir"  # the runner's folder: the project is not there
    empty.mkdir()
    project = tmp_path / "agents"
    project.mkdir()
    shutil.copy(FLOWS / "secret_flow.py", project / "secret_flow.py")
    k8s = {"namespace": "kitaru", "image": "registry/agents:1.4", "kubeconfig": str(server.kubeconfig),
           "python": sys.executable}
    store = store_config(s3)
    stack = tmp_path / "k8s.yaml"
    stack.write_text(yaml.safe_dump({
        "name": "k8s",
        "registry": {"flavor": "postgres", "config": {"url": "${env:KITARU_TEST_DB_URL}"}},
        "artifact_store": {"flavor": "s3", "config": store},
        "orchestrator": {"flavor": "kubernetes", "config": {
            **k8s, "working_dir": str(empty), "env_from_runner": ["AGENT_TOKEN", "KITARU_TEST_DB_URL"]}},
        "execution_target": {"flavor": "kubernetes", "config": {**k8s, "env_from_runner": ["AGENT_TOKEN"]}},
    }))
    assert run_cli("stack", "register", str(stack)).returncode == 0

    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        code, out = procs.finish(procs.python("secret_flow.py", str(workdir), cwd=project))
    assert code == 0, out
    exec_id = (workdir / "exec_id").read_text()
    done = wait_for_status(exec_id, {"completed", "failed"})
    assert done.status.value == "completed", done
    result = kitaru.load(exec_id, "output")
    digest = hashlib.sha256(token.encode()).hexdigest()
    # Both Jobs had the token (the flow body's and the isolated call's) ...
    assert result["runner"]["digest"] == digest and result["task"]["digest"] == digest
    assert result["task"]["pid"] != result["runner"]["pid"]
    # ... the body ran from the code package unpacked under the runner's home, not the project.
    assert "/code/" in result["file"] and not result["file"].startswith(str(project))

    # Each Job's own Secret holds the token; no manifest of a Job or pod does.
    api = controller.api
    jobs = controller.batch.list_namespaced_job("kitaru").items
    assert len(jobs) == 2
    secrets = controller.core.list_namespaced_secret("kitaru").items
    assert sorted(s.metadata.name for s in secrets) == sorted(f"{j.metadata.name}-env" for j in jobs)
    assert all(s.metadata.owner_references[0].uid for s in secrets)
    manifests = json.dumps(api.sanitize_for_serialization(
        [*jobs, *controller.core.list_namespaced_pod("kitaru").items]))
    assert token not in manifests and postgres_url not in manifests
    assert "${env:KITARU_TEST_DB_URL}" in manifests  # the registry's config as the stack wrote it

    # Nowhere in the record, the store (task specs, results, artifacts, code), the logs or the home.
    assert token not in everything_in_the_record(postgres_url)
    objects = everything_in_the_bucket(s3, store["path"])
    assert any(key.endswith("/spec.json") for key in objects)
    for key, data in objects.items():
        assert token.encode() not in data, key
    logs = run_cli("executions", "logs", exec_id)
    assert logs.returncode == 0 and "with the token" in logs.stdout and token not in logs.stdout
    for folder in (controller.logs_dir, tmp_path / "logs", kitaru_home):
        for path in folder.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path

