"""Deployments: immutable numbered snapshots of a flow, tags that route to them, invocations
that run the snapshot's code (not the working tree)."""

from __future__ import annotations

import json
import threading
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from kitaru import KitaruClient
from kitaru.deployments import DeploymentStore
from kitaru.errors import DeploymentNotFoundError, FlowInputError, InvalidStateError
from kitaru.flow_targets import load_flow_target

APP = '''\
from pathlib import Path

from kitaru import checkpoint, flow, wait

from greeting import LABEL


@checkpoint
def greet(out: str, who: str) -> str:
    Path(out).write_text(f"{LABEL}:{who}")
    return LABEL


@flow
def greeter(out: str, who: str = "world") -> str:
    return greet(out, who)


@flow
def approver(out: str) -> str:
    answer = wait(name="approve", question="Ship it?", schema=str, timeout=0)
    return greet(out, answer)
'''


def write_project(root: Path, label: str) -> Path:
    """A project whose flow writes `<label>:<who>` to its `out` file (the label lives in a
    second module, so a snapshot must hold the whole project, not just the flow's file)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "greeter_app.py").write_text(APP)
    (root / "greeting.py").write_text(f"LABEL = {label!r}\n")
    return root / "greeter_app.py"


def deploy(app: Path, **kwargs: Any) -> Any:
    return load_flow_target(f"{app}:greeter").deploy(**kwargs)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", "one")


# -- versions and tags (no runner started) ------------------------------------------------------


def test_versions_are_numbered_and_hold_an_immutable_snapshot(project: Path, client: KitaruClient) -> None:
    v1 = deploy(project, who="ada")
    write_project(project.parent, "two")
    v2 = deploy(project)
    assert (v1.flow, v1.version, v2.version) == ("greeter", 1, 2)
    assert v1.tags == {"default": True} and v2.tags == {}
    assert v1.entrypoint == "greeter_app:greeter"
    assert v1.defaults == {"who": "ada"} and v2.defaults == {}
    assert v1.stack == "local" and v1.stack_spec["registry"]["flavor"] == "sqlite"
    assert v1.python.count(".") == 2 and "kitaru" in v1.packages
    assert [p["name"] for p in v1.parameters] == ["out", "who"]
    assert v1.schema["required"] == ["out"]
    # The code package is in the artifact store under its sha256, with the files as deployed.
    store = client._stack.artifact_store
    for dep, label in ((v1, "one"), (v2, "two")):
        files = zipfile.ZipFile(BytesIO(store.get_blob(dep.code_package)))
        assert files.read("greeting.py").decode() == f"LABEL = {label!r}\n"
    assert v1.code_package != v2.code_package
    listed = client.deployments.list(flow="greeter")
    assert [(d.version, d.tags) for d in listed] == [(1, {"default": True}), (2, {})]
    assert client.deployments.get(flow="greeter").version == 1  # the `default` tag
    assert listed[0].to_dict()["tags"] == {"default": True}


def test_exclusive_tags_move_shared_tags_label_and_default_stays(project: Path, client: KitaruClient) -> None:
    deploy(project, tags=["production"])
    deploy(project, tags={"canary": True})
    api = client.deployments
    assert api.get(flow="greeter", tag="production").version == 1
    assert api.get(flow="greeter", tag="canary").version == 2
    # Promote: one write moves `production` to v2; rollback is the same write back.
    assert api.tag(flow="greeter", version=2, tag="production", exclusive=True).tags == {
        "canary": True, "production": True}
    assert api.get(flow="greeter", version=1).tags == {"default": True}
    assert api.get(flow="greeter", tag="production").version == 2
    api.tag(flow="greeter", version=1, tag="production", exclusive=True)
    assert api.get(flow="greeter", tag="production").version == 1
    # A shared tag labels several versions and routes only while it labels one.
    api.tag(flow="greeter", version=1, tag="benchmark")
    assert api.get(flow="greeter", tag="benchmark").version == 1
    api.tag(flow="greeter", version=2, tag="benchmark")
    with pytest.raises(InvalidStateError, match="labels several versions"):
        api.get(flow="greeter", tag="benchmark")
    with pytest.raises(InvalidStateError, match="exclusive on v1"):
        api.tag(flow="greeter", version=2, tag="production")
    assert api.untag(flow="greeter", version=2, tag="benchmark").tags == {"canary": True}
    with pytest.raises(InvalidStateError, match="only moved"):
        api.untag(flow="greeter", version=1, tag="default")
    assert api.tag(flow="greeter", version=2, tag="default").tags["default"] is True  # always exclusive
    assert "default" not in api.get(flow="greeter", version=1).tags
    assert [f.to_dict() for f in api.flows()] == [{
        "flow": "greeter", "versions": [1, 2], "latest_version": 2,
        "tags": {"benchmark": [1], "canary": [2], "default": [2], "production": [1]},
    }]


def test_delete_is_refused_under_an_exclusive_tag_and_numbers_are_never_reused(
    project: Path, client: KitaruClient,
) -> None:
    for _ in range(3):
        deploy(project)
    api = client.deployments
    api.tag(flow="greeter", version=3, tag="nightly")
    with pytest.raises(InvalidStateError, match="holds exclusive tag"):
        api.delete(flow="greeter", version=1)
    api.delete(flow="greeter", version=3)  # its shared tag goes with it
    with pytest.raises(DeploymentNotFoundError, match=r"versions: v1, v2"):
        api.get(flow="greeter", version=3)
    with pytest.raises(DeploymentNotFoundError, match="no deployment tag 'nightly'"):
        api.get(flow="greeter", tag="nightly")
    assert deploy(project).version == 4


def test_gc_keeps_the_code_of_every_version_until_it_is_deleted(project: Path, client: KitaruClient) -> None:
    v1 = deploy(project, publish_default_on_first_deploy=False)
    store = client._stack.artifact_store
    assert client.gc(grace=0, dry_run=False).removed == 0
    assert store.get_blob(v1.code_package)
    client.deployments.delete(flow="greeter", version=1)
    client.gc(grace=0, dry_run=False)
    assert v1.code_package not in {b.key for b in store.list_blobs()}


def test_racing_deploys_get_distinct_versions(project: Path, client: KitaruClient) -> None:
    store = DeploymentStore(client._stack.registry)
    versions: list[int] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            doc, _ = store.create("racer", {"note": "x"}, {})
            versions.append(doc.body["version"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(versions) == list(range(1, 9))
    assert DeploymentStore(client._stack.registry).tags("racer")["tags"] == {"default": {"1": True}}


def test_concurrent_tag_changes_are_all_kept(project: Path, client: KitaruClient) -> None:
    deploy(project)
    deploy(project)
    api = client.deployments
    errors: list[BaseException] = []

    def label(n: int) -> None:
        try:
            api.tag(flow="greeter", version=1 + n % 2, tag=f"label-{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    on_v1 = sorted(api.get(flow="greeter", version=1).tags)
    assert on_v1 == ["default"] + [f"label-{n}" for n in (0, 2, 4, 6)]
    assert sorted(api.get(flow="greeter", version=2).tags) == [f"label-{n}" for n in (1, 3, 5, 7)]


def test_selectors_and_inputs_are_checked_before_anything_is_recorded(
    project: Path, client: KitaruClient,
) -> None:
    api = client.deployments
    with pytest.raises(DeploymentNotFoundError, match="has no deployments"):
        api.invoke(flow="greeter")
    deploy(project, publish_default_on_first_deploy=False)
    with pytest.raises(DeploymentNotFoundError, match="none holds the `default` tag"):
        api.invoke(flow="greeter", inputs={"out": "x"})
    with pytest.raises(FlowInputError, match="takes no input 'topic'"):
        api.invoke(flow="greeter", version=1, inputs={"out": "x", "topic": "y"})
    with pytest.raises(FlowInputError, match="needs input 'out'"):
        api.invoke(flow="greeter", version=1)
    assert client.executions.list() == []


# -- invocations run the snapshot's code ----------------------------------------------------------


@pytest.mark.slow
def test_invoke_runs_the_tagged_version_not_the_working_tree(tmp_path: Path, client: KitaruClient) -> None:
    app = write_project(tmp_path / "proj", "one")
    greeter = load_flow_target(f"{app}:greeter")
    greeter.deploy(who="ada", tags=["production"])
    write_project(tmp_path / "proj", "two")
    load_flow_target(f"{app}:greeter").deploy(who="bob")
    write_project(tmp_path / "proj", "three")  # the working tree moves on: never deployed
    out = tmp_path / "out.txt"

    def invoked(**selector: Any) -> tuple[str, str]:
        handle = greeter.invoke(**selector, out=str(out))
        result = handle.wait(timeout=60)
        return result, out.read_text()

    assert invoked(tag="production") == ("one", "one:ada")
    client.deployments.tag(flow="greeter", version=2, tag="production", exclusive=True)
    assert invoked(tag="production") == ("two", "two:bob")
    assert invoked(version=1, who="eve") == ("one", "one:eve")
    client.deployments.tag(flow="greeter", version=1, tag="production", exclusive=True)  # rollback
    assert invoked(tag="production") == ("one", "one:ada")
    assert invoked() == ("one", "one:ada")  # `default` is on v1
    runs = client.executions.list(flow="greeter")
    assert len(runs) == 5 and all(r.status.value == "completed" for r in runs)
    assert [r.deployment["version"] for r in runs] == [1, 1, 1, 2, 1]  # newest first
    assert client.executions.get(runs[0].exec_id).deployment == {"flow": "greeter", "version": 1}


# -- command line ----------------------------------------------------------------------------------


def test_cli_deploys_lists_tags_and_shows_versions(project: Path, cli: Any) -> None:
    made = cli("flow", "deploy", f"{project}:greeter", "--tag", "production", "--input",
               '{"who": "ada"}', "-o", "json")
    assert made.exit_code == 0, made.stderr
    body = made.json()
    assert (body["version"], body["tags"], body["defaults"]) == (1, {"default": True, "production": True},
                                                                {"who": "ada"})
    assert "/api/v1/deployments/greeter/invoke" in body["curl"]
    shown = cli("deploy", f"{project}:greeter", "--tag", "canary")  # Kitaru's top-level name
    assert shown.exit_code == 0, shown.stderr
    assert "v2" in shown.stdout and "curl -sS -X POST" in shown.stdout and '"tag":"canary"' in shown.stdout
    moved = cli("flow", "tag", "greeter", "production", "--version", "2", "--exclusive", "-o", "json")
    assert moved.json()["tags"] == {"canary": True, "production": True}
    listed = cli("flow", "deployments", "list", "greeter", "-o", "json").json()
    assert [(d["version"], d["tags"]) for d in listed] == [(1, {"default": True}),
                                                           (2, {"canary": True, "production": True})]
    got = cli("flow", "deployments", "get", "greeter", "--tag", "production")
    assert got.exit_code == 0 and "greeter v2" in got.stdout and "greeter_app:greeter" in got.stdout
    flows = cli("flow", "list", "-o", "json").json()
    assert flows[0]["tags"] == {"canary": [2], "default": [1], "production": [2]}
    refused = cli("flow", "deployments", "delete", "greeter", "--version", "2")
    assert refused.exit_code == 1 and "exclusive tag(s) canary, production" in refused.stderr
    assert cli("flow", "untag", "greeter", "canary", "--version", "2").exit_code == 0
    curl = cli("flow", "deployments", "curl", "greeter", "--tag", "production", "--input", '{"out": "x"}')
    assert "greeter tag 'production' is v2" in curl.stdout and '"inputs":{"out":"x"}' in curl.stdout
    missing = cli("flow", "invoke", "greeter", "--tag", "nope", "--input", '{"out": "x"}')
    assert missing.exit_code == 1 and "no deployment tag 'nope'" in missing.stderr
    bad = cli("flow", "invoke", "greeter", "--input", '["x"]')
    assert bad.exit_code == 1 and "JSON object" in bad.stderr
    built = cli("build", f"{project}:greeter", "-o", "json").json()  # a version nobody reaches yet
    assert (built["version"], built["tags"]) == (3, {}) and '"version":3' in built["curl"]
    shown = cli("flow", "show", "greeter")
    assert "3 version(s), latest v3" in shown.stdout and "production       -> v2" in shown.stdout
    assert cli("flow", "show", "nobody").exit_code == 1


@pytest.mark.slow
def test_cli_invoke_runs_the_tagged_code(tmp_path: Path, cli: Any) -> None:
    app = write_project(tmp_path / "proj", "one")
    assert cli("flow", "deploy", f"{app}:greeter", "--tag", "production").exit_code == 0
    write_project(tmp_path / "proj", "two")
    assert cli("flow", "deploy", f"{app}:greeter").exit_code == 0
    write_project(tmp_path / "proj", "three")
    out = tmp_path / "out.txt"
    inputs = json.dumps({"out": str(out), "who": "cli"})

    def invoked(*selector: str) -> Any:
        done = cli("flow", "invoke", "greeter", *selector, "--input", inputs, "--wait", "-o", "json")
        assert done.exit_code == 0, done.stderr
        return done.json()["result"], out.read_text()

    assert invoked("--tag", "production") == ("one", "one:cli")
    assert cli("flow", "tag", "greeter", "production", "--version", "2", "--exclusive").exit_code == 0
    assert invoked("--tag", "production") == ("two", "two:cli")
    assert invoked("--version", "1") == ("one", "one:cli")
    latest = cli("executions", "list", "-n", "1", "-o", "json").json()[0]
    assert latest["deployment"] == {"flow": "greeter", "version": 1}
    assert "greeter v1" in cli("executions", "get", latest["exec_id"]).stdout
