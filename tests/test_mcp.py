"""kitaru's MCP server: Kitaru 0.21's tool names, the tools over real executions, and a real
`kitaru-mcp` process driven over stdio by the `mcp` client library."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_flows.harness import FLOWS, TIMEOUT

#: Kitaru 0.21's tools that the issue names, plus kitaru's memory tools.
KITARU_TOOLS = {
    "kitaru_status", "kitaru_stacks_list",
    *(f"kitaru_executions_{n}" for n in (
        "list", "get", "latest", "run", "cancel", "input", "resume", "retry", "replay",
        "abort_wait", "statistics", "diff", "diff_matrix")),
    "get_execution_logs", "kitaru_artifacts_list", "kitaru_artifacts_get",
    *(f"kitaru_deployments_{n}" for n in ("deploy", "invoke", "list", "get", "delete", "tag", "untag")),
    "kitaru_secrets_create", "kitaru_secrets_list",
    *(f"kitaru_memory_{n}" for n in ("list", "get", "set", "delete", "history")),
}
BRIEF = f"{FLOWS / 'brief_flow.py'}:brief"


class Session:
    """An MCP client session (in process, or over a transport) with one-call helpers."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(self, tool: str, /, **args: Any) -> Any:
        """The tool's result (its structured content unwrapped); a tool error fails the test."""
        result = await self.client.call_tool(tool, args)
        assert not result.is_error, f"{tool}({args}): {result.content[0].text}"
        return _result(result)

    async def error(self, tool: str, /, **args: Any) -> str:
        """The one-line message of a tool call that must fail."""
        result = await self.client.call_tool(tool, args)
        assert result.is_error, f"{tool}({args}) did not fail: {result.structured_content}"
        return result.content[0].text

    async def until(self, tool: str, condition: Any, what: str, /, **args: Any) -> Any:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            found = await self.call(tool, **args)
            if condition(found):
                return found
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}: {found}"
            await asyncio.sleep(0.1)


def _result(result: Any) -> Any:
    data = result.structured_content
    if data is None:  # a text result (get_execution_logs)
        return result.content[0].text if result.content else None
    return data["result"] if set(data) == {"result"} else data


async def _in_process(body: Any) -> Any:
    from mcp import Client

    from kitaru.mcp.build import build_server

    async with Client(build_server()) as client:
        return await body(Session(client))


def test_the_tools_import_without_the_mcp_package() -> None:
    code = ("import sys; sys.modules['mcp'] = None; import kitaru.mcp.server as s; "
            "print(len(s.TOOLS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(KITARU_TOOLS)


def test_every_kitaru_tool_is_served_with_its_hints() -> None:
    async def body(s: Session) -> Any:
        return (await s.client.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(_in_process(body))}
    assert set(tools) == KITARU_TOOLS
    assert tools["kitaru_executions_get"].annotations.read_only_hint is True
    assert tools["kitaru_executions_cancel"].annotations.destructive_hint is True
    run = tools["kitaru_executions_run"].input_schema
    assert run["required"] == ["target"] and {"args", "stack"} <= set(run["properties"])


def test_tools_read_and_operate_a_finished_execution() -> None:
    done = _brief().run("durability", ask=False)
    assert done.wait(timeout=TIMEOUT) == {"notes": "notes on durability", "outcome": "published"}
    exec_id = done.exec_id

    async def body(s: Session) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["status"] = await s.call("kitaru_status")
        out["stacks"] = await s.call("kitaru_stacks_list")
        out["listed"] = await s.call("kitaru_executions_list", status="completed")
        out["none"] = await s.call("kitaru_executions_list", status="failed")
        out["latest"] = await s.call("kitaru_executions_latest", flow="brief")
        out["get"] = await s.call("kitaru_executions_get", exec_id=exec_id[:10])
        out["logs"] = await s.call("get_execution_logs", exec_id=exec_id)
        out["flow_logs"] = await s.call("get_execution_logs", exec_id=exec_id, source="runner")
        out["outputs"] = await s.call("kitaru_artifacts_list", exec_id=exec_id, kind="output",
                                      producing_call="research")
        out["saved"] = await s.call("kitaru_artifacts_list", exec_id=exec_id, name="summary")
        out["notes"] = await s.call("kitaru_artifacts_get", artifact_id=out["outputs"][0]["artifact_id"])
        out["summary"] = await s.call("kitaru_artifacts_get", artifact_id=out["saved"][0]["artifact_id"])
        out["missing"] = await s.error("kitaru_executions_get", exec_id="no-such-execution")
        out["bad_limit"] = await s.error("kitaru_executions_list", limit=0)
        out["no_latest"] = await s.error("kitaru_executions_latest", flow="elsewhere")
        out["abort"] = await s.error("kitaru_executions_abort_wait", exec_id=exec_id, wait="approve")
        out["resume_done"] = await s.error("kitaru_executions_resume", exec_id=exec_id)
        return out

    out = asyncio.run(_in_process(body))
    assert out["status"]["stack"] == "local" and out["status"]["waiting_executions"] == 0
    assert out["status"]["components"]["registry"] in ("sqlite", "postgres")
    assert [s["name"] for s in out["stacks"] if s["active"]] == ["local"]
    assert [e["exec_id"] for e in out["listed"]] == [exec_id] and out["none"] == []
    assert "checkpoints" not in out["listed"][0]
    assert out["latest"]["exec_id"] == exec_id == out["get"]["exec_id"]
    assert out["get"]["status"] == "completed"
    assert [c["call_id"] for c in out["get"]["checkpoints"]] == ["research#1", "publish#1"]
    assert "[research#1] researching durability" in out["logs"]
    assert "research#1" not in out["flow_logs"]
    assert [a["producing_call"] for a in out["outputs"]] == ["research#1"]
    assert out["notes"]["value"] == "notes on durability" and out["notes"]["value_format"] == "json"
    assert out["summary"]["value"] == {"topic": "durability", "approved": True}
    assert out["summary"]["kind"] == "saved" and "key" not in out["summary"]
    assert "no-such-execution" in out["missing"] and "\n" not in out["missing"]
    assert "limit=0" in out["bad_limit"]
    assert "flow='elsewhere'" in out["no_latest"]
    assert "is completed; its waits take no more input" in out["abort"]
    assert exec_id in out["resume_done"]


def _brief() -> Any:
    sys.path.insert(0, str(FLOWS))
    try:
        from brief_flow import brief
    finally:
        sys.path.remove(str(FLOWS))
    return brief


def test_abort_wait_lets_the_flow_go_on_without_the_input() -> None:
    handle = _brief().run("quiet", timeout=TIMEOUT)  # its runner polls the wait in this process

    async def body(s: Session) -> dict[str, Any]:
        await s.until("kitaru_executions_get", lambda e: e["pending_wait"], "the wait",
                      exec_id=handle.exec_id)
        return {
            "unknown": await s.error("kitaru_executions_abort_wait", exec_id=handle.exec_id,
                                     wait="publish"),
            "aborted": await s.call("kitaru_executions_abort_wait", exec_id=handle.exec_id,
                                    wait="approve"),
        }

    out = asyncio.run(_in_process(body))
    assert "no pending wait 'publish'" in out["unknown"]
    assert out["aborted"]["status"] != "cancelled"
    assert handle.wait(timeout=TIMEOUT) == {"notes": "notes on quiet", "outcome": "held"}


def test_statistics_group_and_measure_executions() -> None:
    brief = _brief()
    for topic in ("a", "b"):
        brief.run(topic, ask=False).wait(timeout=TIMEOUT)
    with pytest.raises(Exception, match="can't take these inputs"):
        brief.run(subject="x")

    async def body(s: Session) -> dict[str, Any]:
        return {
            "overview": await s.call("kitaru_executions_statistics"),
            "by_status": await s.call("kitaru_executions_statistics", group_by=["flow", "status"],
                                      metrics=["took:duration:max", "llm_total_tokens"]),
            "by_day": await s.call("kitaru_executions_statistics", group_by=["time:day"], max_groups=1),
            "bad": await s.error("kitaru_executions_statistics", group_by=["colour"]),
            "tags": await s.error("kitaru_executions_statistics", tags=["nightly"]),
        }

    out = asyncio.run(_in_process(body))
    overview = out["overview"]
    assert overview["groups"] == [{"keys": {}, "execution_count": 2, "metrics": {}}]
    assert overview["summary"]["checkpoints"]["calls"] == 4 and overview["window"]["complete"]
    (group,) = out["by_status"]["groups"]
    assert group["keys"] == {"flow": "brief", "status": "completed"} and group["execution_count"] == 2
    assert group["metrics"]["took"] > 0 and group["metrics"]["llm_total_tokens"] == 0
    assert out["by_status"]["group_count"] == 1 and out["by_status"]["truncated"] is False
    assert len(out["by_day"]["groups"]) == 1 and out["by_day"]["groups"][0]["execution_count"] == 2
    assert "colour" in out["bad"] and "time:day" in out["bad"]
    assert "no tags" in out["tags"]


def test_diff_tools_compare_an_execution_with_its_replay() -> None:
    from kitaru import KitaruClient

    done = _brief().run("diffs", ask=False)
    done.wait(timeout=TIMEOUT)
    replay = KitaruClient().executions.replay(
        done.exec_id, at="research", checkpoint_overrides={"research": {"output": "other notes"}},
        wait=True).results[0].replay_exec_id

    async def body(s: Session) -> dict[str, Any]:
        return {
            "diff": await s.call("kitaru_executions_diff", original=done.exec_id[:8]),
            "named": await s.call("kitaru_executions_diff", original=done.exec_id,
                                  executions=[replay]),
            "matrix": await s.call("kitaru_executions_diff_matrix", exec_ids=[done.exec_id]),
            "alone": await s.error("kitaru_executions_diff", original=replay),
        }

    out = asyncio.run(_in_process(body))
    (diff,) = out["diff"]["diffs"]
    assert out["diff"]["original"] == done.exec_id and (diff["a"], diff["b"]) == (done.exec_id, replay)
    assert diff["replay"] is True and diff["first_difference"] == "research#1"
    research = next(c for c in diff["checkpoints"] if c["call_id"] == "research#1")
    assert research["status"] == "changed" and "other notes" in research["artifacts"][0]["diff"]
    assert out["named"]["diffs"] == out["diff"]["diffs"]
    assert out["matrix"]["diff_matrix"]["exec_ids"] == [done.exec_id, replay]
    assert "has no replays" in out["alone"]


def test_secret_tools_create_and_list_without_values() -> None:
    async def body(s: Session) -> dict[str, Any]:
        return {
            "made": await s.call("kitaru_secrets_create", name="openai", values={"API_KEY": "sk-123"}),
            "again": await s.error("kitaru_secrets_create", name="openai", values={"API_KEY": "sk-4"}),
            "other": await s.call("kitaru_secrets_create", name="search", values={"TOKEN": "t-9"}),
            "first": await s.call("kitaru_secrets_list", size=1),
            "second": await s.call("kitaru_secrets_list", page=2, size=1),
            "past": await s.call("kitaru_secrets_list", page=3, size=1),
            "bad": await s.error("kitaru_secrets_list", page=0),
            "not_text": await s.error("kitaru_secrets_create", name="n", values={"J": 1}),
        }

    out = asyncio.run(_in_process(body))
    assert out["made"]["name"] == "openai" and out["made"]["keys"] == ["API_KEY"]
    assert out["made"]["keys_known"] is True
    assert "exists" in out["again"]
    assert [s["name"] for s in out["first"] + out["second"]] == ["openai", "search"]
    assert out["past"] == [] and "page=0" in out["bad"]
    assert "sk-123" not in json.dumps(out) and "t-9" not in json.dumps(out)
    assert "values.J" in out["not_text"] and "string" in out["not_text"]  # the tool's schema


def test_deployment_tools_deploy_tag_and_route(tmp_path: Path) -> None:
    async def body(s: Session) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["v1"] = await s.call("kitaru_deployments_deploy", target=BRIEF, inputs={"topic": "one"})
        out["v2"] = await s.call("kitaru_deployments_deploy", target=BRIEF, tag="canary",
                                 exclusive=True, inputs={"topic": "two"}, retries=1)
        out["default"] = await s.call("kitaru_deployments_get", flow="brief")
        out["canary"] = await s.call("kitaru_deployments_get", flow="brief", tag="canary")
        out["stable"] = await s.call("kitaru_deployments_tag", flow="brief", version=2, tag="stable")
        out["untagged"] = await s.call("kitaru_deployments_untag", flow="brief", version=2, tag="canary")
        out["protected"] = await s.error("kitaru_deployments_delete", flow="brief", version=1)
        out["listed"] = await s.call("kitaru_deployments_list", flow="brief")
        out["deleted"] = await s.call("kitaru_deployments_delete", flow="brief", version=2)
        out["after"] = await s.call("kitaru_deployments_list")
        out["missing"] = await s.error("kitaru_deployments_get", flow="brief", tag="canary")
        out["bad_inputs"] = await s.error("kitaru_deployments_invoke", flow="brief",
                                          inputs={"subject": "x"})
        return out

    out = asyncio.run(_in_process(body))
    assert (out["v1"]["version"], out["v1"]["tags"]) == (1, {"default": True})
    assert out["v1"]["defaults"] == {"topic": "one"} and out["v1"]["stack_components"]["registry"]
    assert "stack_spec" not in out["v1"]
    assert (out["v2"]["version"], out["v2"]["tags"]) == (2, {"canary": True})
    assert out["v2"]["options"]["retries"] == 1
    assert out["default"]["version"] == 1 and out["canary"]["version"] == 2
    assert out["stable"]["tags"] == {"canary": True, "stable": False}
    assert out["untagged"]["tags"] == {"stable": False}
    assert "holds exclusive tag(s) default" in out["protected"]
    assert [d["version"] for d in out["listed"]] == [1, 2]
    assert out["deleted"] == {"flow": "brief", "version": 2, "deleted": True}
    assert [d["version"] for d in out["after"]] == [1]
    assert "canary" in out["missing"]
    assert "subject" in out["bad_inputs"]


def test_memory_tools_write_read_and_keep_history() -> None:
    async def body(s: Session) -> dict[str, Any]:
        out: dict[str, Any] = {}
        await s.call("kitaru_memory_set", key="style", value={"tone": "short"}, scope="team")
        out["set"] = await s.call("kitaru_memory_set", key="style", value={"tone": "warm"},
                                  scope="team", scope_type="namespace")
        out["get"] = await s.call("kitaru_memory_get", key="style", scope="team")
        out["first"] = await s.call("kitaru_memory_get", key="style", scope="team", version=1)
        out["never"] = await s.call("kitaru_memory_get", key="nothing", scope="team")
        out["list"] = await s.call("kitaru_memory_list", scope="team", prefix="st")
        out["other"] = await s.call("kitaru_memory_list", scope="team", prefix="x")
        await s.call("kitaru_memory_delete", key="style", scope="team")
        out["history"] = await s.call("kitaru_memory_history", key="style", scope="namespace:team")
        out["bad_type"] = await s.error("kitaru_memory_list", scope="team", scope_type="galaxy")
        return out

    out = asyncio.run(_in_process(body))
    assert out["set"]["version"] == 2 and out["set"]["scope"] == "namespace:team"
    assert out["get"]["value"] == {"tone": "warm"} and out["first"]["value"] == {"tone": "short"}
    assert out["never"] is None
    assert [e["key"] for e in out["list"]] == ["style"] and out["other"] == []
    assert [(e["version"], e["deleted"]) for e in out["history"]] == [(1, False), (2, False), (3, True)]
    assert "galaxy" in out["bad_type"]


def test_run_refuses_a_bad_target_before_recording_anything(tmp_path: Path) -> None:
    from kitaru import KitaruClient
    from kitaru.mcp import server

    plain = tmp_path / "plain.py"
    plain.write_text("def brief(topic):\n    return topic\n")
    for target, words in [
        ("no-colon", "is not `path/to/file.py:flow`"),
        (f"{tmp_path / 'missing.py'}:brief", "does not exist"),
        (f"{plain}:brief", "is not a @flow"),
        (f"{plain}:other", "has no 'other'"),
        ("kitaru_no_such_module:brief", "cannot import"),
        (f"{BRIEF}", None),
    ]:
        if words is None:
            with pytest.raises(server.KitaruError, match="can't take these inputs"):
                server.kitaru_executions_run(target, args={"subject": "x"})
            continue
        with pytest.raises(server.KitaruError, match=re.escape(words)):
            server.kitaru_executions_run(target)
    assert KitaruClient().executions.list() == []


def test_large_and_non_json_values_come_back_as_a_shortened_repr() -> None:
    from kitaru.mcp.server import MAX_VALUE_CHARS, serialize_value

    big = serialize_value("x" * (MAX_VALUE_CHARS + 10))
    assert big["value_format"] == "repr" and len(big["value"]) == MAX_VALUE_CHARS
    assert big["truncated_from_chars"] > MAX_VALUE_CHARS
    odd = serialize_value({1, 2})
    assert odd == {"value": "{1, 2}", "value_format": "repr", "value_type": "set"}
    assert serialize_value(float("nan"))["value_format"] == "repr"


@pytest.mark.slow
def test_kitaru_mcp_over_stdio_runs_a_flow_through_its_wait(tmp_path: Path, kitaru_home: Path) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    script = Path(sys.executable).parent / "kitaru-mcp"
    assert script.exists(), "the kitaru-mcp console script is not installed (scripts/setup.sh)"
    params = StdioServerParameters(command=str(script), cwd=str(tmp_path), env={
        "KITARU_HOME": str(kitaru_home), "KITARU_INTERACTIVE": "0",
        "PYTHONPATH": os.environ.get("PYTHONPATH", "")})

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(params) as client:  # its stderr is the test's: pytest shows it on a failure
            s = Session(client)
            out["tools"] = {t.name for t in (await client.list_tools()).tools}
            started = await s.call("kitaru_executions_run", target=BRIEF,
                                   args={"topic": "stdio", "timeout": 0.2})
            eid = out["exec_id"] = started["exec_id"]
            waiting = await s.until("kitaru_executions_get", lambda e: e["pending_wait"],
                                    "the approve wait", exec_id=eid)
            out["wait"] = waiting["pending_wait"]
            out["refused"] = await s.error("kitaru_executions_input", exec_id=eid,
                                           wait="approve", value="maybe")
            await s.call("kitaru_executions_input", exec_id=eid, wait="approve", value=True)
            out["done"] = await s.until("kitaru_executions_get",
                                        lambda e: e["status"] not in ("running", "waiting"),
                                        "the end", exec_id=eid)
            out["logs"] = await s.call("get_execution_logs", exec_id=eid)
            out["saved"] = await s.call("kitaru_artifacts_list", exec_id=eid, kind="saved")
            out["summary"] = await s.call("kitaru_artifacts_get",
                                          artifact_id=out["saved"][0]["artifact_id"])
            await s.call("kitaru_deployments_deploy", target=BRIEF, inputs={"ask": False})
            invoked = await s.call("kitaru_deployments_invoke", flow="brief",
                                   inputs={"topic": "deployed"})
            out["invoked"] = invoked
            out["deployed_run"] = await s.until(
                "kitaru_executions_get", lambda e: e["status"] not in ("running", "waiting"),
                "the deployed run's end", exec_id=invoked["exec_id"])
        return out

    out = asyncio.run(main())
    assert out["tools"] == KITARU_TOOLS
    assert out["wait"]["name"] == "approve" and out["wait"]["schema"]["json_schema"] == {"type": "boolean"}
    assert "does not match its schema" in out["refused"]
    assert out["done"]["status"] == "completed", json.dumps(out["done"]["failure"])
    assert [c["call_id"] for c in out["done"]["checkpoints"]] == ["research#1", "publish#1"]
    assert "researching stdio" in out["logs"]
    assert out["summary"]["value"] == {"topic": "stdio", "approved": True}
    assert (out["invoked"]["version"], out["invoked"]["tag"]) == (1, "default")
    assert out["deployed_run"]["status"] == "completed", out["deployed_run"]["failure"]
    assert [c["call_id"] for c in out["deployed_run"]["checkpoints"]] == ["research#1", "publish#1"]
