"""The command line: `-o json` everywhere, short ids in tables, exit codes, no tracebacks.

Most checks run the CLI in this process (the `cli` fixture); the ones about a
real process's exit code and stderr run `kitaru` in a subprocess (`run_cli`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from conftest import run_cli, until_suspended

from kitaru import checkpoint, flow, wait
from kitaru.cli import extensions
from kitaru.cli.main import app
from kitaru_core.stack import StackStore


@checkpoint
def shout(text: str) -> str:
    print(f"shouting {text}")
    return text.upper()


@flow
def loud(text: str) -> str:
    return shout(text).load()


def leaf_commands(command=None, path=()) -> list[tuple[tuple[str, ...], object]]:
    """Every runnable command of the CLI as (words, click command)."""
    command = command or typer.main.get_command(app)
    if len(path) == 1 and path[0] in extensions.KNOWN:  # a group another distribution adds
        command = typer.main.get_command(extensions.load(path[0]))
    children = getattr(command, "commands", None)
    if not children:
        return [(path, command)]
    return [leaf for name, child in sorted(children.items())
            for leaf in leaf_commands(child, (*path, name))]


def test_every_command_takes_output_json():
    commands = leaf_commands()
    assert {words for words, _ in commands} >= {
        ("init",), ("status",), ("plugins", "list"),
        *[("stack", c) for c in ("register", "set", "list", "show", "delete", "validate")],
        *[("executions", c) for c in ("list", "get", "logs", "input", "resume", "retry", "replay",
                                      "cancel")],
    }
    missing = [" ".join(words) for words, command in commands
               if not any("--output" in p.opts and "-o" in p.opts for p in command.params)]
    assert missing == []


def test_read_commands_print_parseable_json(cli):
    handle = loud.run("hi")
    assert handle.wait() == "HI"
    outputs = {
        words: cli(*words, "-o", "json")
        for words in [("init",), ("status",), ("stack", "list"), ("stack", "show", "local"),
                      ("plugins", "list"), ("executions", "list"),
                      ("executions", "get", handle.exec_id), ("executions", "logs", handle.exec_id)]
    }
    for words, result in outputs.items():
        assert result.exit_code == 0, (words, result)
        assert result.stderr == ""
        result.json()  # parses
    got = outputs[("executions", "get", handle.exec_id)].json()
    assert got["exec_id"] == handle.exec_id
    assert got["status"] == "completed"
    assert got["stack_name"] == "local"
    assert [c["call_id"] for c in got["checkpoints"]] == ["shout#1"]
    logs = outputs[("executions", "logs", handle.exec_id)].json()
    assert "shouting hi" in "".join(entry["text"] for entry in logs)


def test_executions_table_shows_short_ids_json_keeps_full_ids(cli):
    first = loud.run("a")
    first.wait()
    exec_id = first.exec_id
    loud.run("b").wait()
    table = cli("executions", "list")
    assert table.exit_code == 0
    assert exec_id[:12] in table.stdout
    assert exec_id not in table.stdout
    row = next(line for line in table.stdout.splitlines() if exec_id[:12] in line)
    assert "completed" in row and "loud" in row  # one line per execution, nothing folded
    listed = cli("executions", "list", "-o", "json").json()
    assert exec_id in [e["exec_id"] for e in listed]
    assert len(listed) == 2
    # the short id is enough to name an execution
    got = cli("executions", "get", exec_id[:12], "-o", "json")
    assert got.exit_code == 0 and got.json()["exec_id"] == exec_id
    assert "shout#1" in cli("executions", "get", exec_id[:12]).stdout


def test_executions_list_filters(cli):
    loud.run("a").wait()
    assert len(cli("executions", "list", "--flow", "loud", "-o", "json").json()) == 1
    assert cli("executions", "list", "--flow", "quiet", "-o", "json").json() == []
    assert cli("executions", "list", "--status", "failed", "-o", "json").json() == []
    bad = cli("executions", "list", "--status", "sleeping")
    assert bad.exit_code == 2
    assert "--status 'sleeping' is not a status" in bad.stderr
    assert "running, waiting, completed, failed" in bad.stderr


@pytest.mark.parametrize(
    "command",
    [["executions", "get"], ["executions", "logs"], ["executions", "cancel"],
     ["executions", "resume"], ["executions", "retry"], ["executions", "input"]],
    ids=lambda c: c[1],
)
def test_unknown_execution_id_is_a_clear_error(cli, command: list[str]):
    loud.run("a").wait()  # the registry exists and has another execution
    result = cli(*command, "0123456789abcdef", "-o", "json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("kitaru: error: no execution '0123456789abcdef'")
    assert "kitaru executions list" in result.stderr


def test_unknown_execution_id_in_a_real_process(kitaru_home: Path):
    result = run_cli("executions", "get", "nope")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "kitaru: error: no execution 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stack", "bogus"], "No such command 'bogus'"),
        (["stack", "register"], "Missing argument"),
        (["stack", "list", "-o", "yaml"], "'yaml' is not one of"),
        (["executions", "list", "--limit", "many"], "Invalid value for '--limit'"),
        (["plugins", "list", "--verbose"], "No such option: --verbose"),
    ],
    ids=["unknown-command", "missing-argument", "bad-output-format", "bad-option-type", "unknown-option"],
)
def test_usage_errors_exit_2(cli, args: list[str], message: str):
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert "Traceback" not in result.stderr


def test_usage_error_in_a_real_process():
    result = run_cli("stack", "bogus")
    assert result.returncode == 2
    assert "No such command 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_arguments_prints_help(cli):
    result = cli()
    assert "Usage: kitaru" in result.stdout + result.stderr
    for group in ("stack", "executions", "plugins"):
        assert group in result.stdout + result.stderr


BAD_STACK_COMMANDS = {
    "yaml-syntax": (["stack", "register", "{dir}/syntax.yaml"], "syntax.yaml: YAML syntax error at line"),
    "unknown-key": (["stack", "validate", "{dir}/key.yaml"], "unknown key 'registri'"),
    "unknown-flavor": (["stack", "register", "{dir}/flavor.yaml"], "unknown registry flavor 'couch'"),
    "wrong-type": (["stack", "register", "{dir}/type.yaml"], "busy_timeout: expected float, got 'soon'"),
    "set-unknown": (["stack", "set", "nowhere"], "no stack named 'nowhere'"),
    "delete-active": (["stack", "delete", "shop"], "stack 'shop' is active"),
    "unknown-active": (["status"], "no stack named 'gone'"),
}


@pytest.mark.parametrize("case", sorted(BAD_STACK_COMMANDS))
def test_bad_stack_input_in_a_real_process(case: str, tmp_path: Path, kitaru_home: Path):
    (tmp_path / "syntax.yaml").write_text("name: shop\nregistry: {flavor: sqlite\n")
    (tmp_path / "key.yaml").write_text("name: shop\nregistri: {flavor: sqlite}\n")
    (tmp_path / "flavor.yaml").write_text("name: shop\nregistry: {flavor: couch}\n")
    (tmp_path / "type.yaml").write_text(
        "name: shop\nregistry: {flavor: sqlite, config: {busy_timeout: soon}}\n"
    )
    (tmp_path / "good.yaml").write_text("name: shop\n")
    StackStore().register(tmp_path / "good.yaml", activate=True)
    registered = {p.name: p.read_text() for p in kitaru_home.rglob("*.yaml")}

    args, message = BAD_STACK_COMMANDS[case]
    env = {"KITARU_STACK": "gone"} if case == "unknown-active" else None
    result = run_cli(*[a.format(dir=tmp_path) for a in args], env=env)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("kitaru: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line
    assert {p.name: p.read_text() for p in kitaru_home.rglob("*.yaml")} == registered


def test_status_shows_the_resolved_stack(cli, tmp_path: Path, monkeypatch):
    data = cli("status", "-o", "json").json()
    assert data["active_stack"] == "local"
    assert data["components"] == {"registry": "sqlite", "artifact_store": "local",
                                  "orchestrator": "local", "execution_target": "inline"}
    (tmp_path / "p.yaml").write_text("name: proc\nexecution_target: {flavor: process}\n")
    cli("stack", "register", str(tmp_path / "p.yaml"))
    monkeypatch.setenv("KITARU_STACK", "proc")
    data = cli("status", "-o", "json").json()
    assert (data["active_stack"], data["components"]["execution_target"]) == ("proc", "process")
    assert "proc" in cli("status").stdout


@flow
def approval(text: str) -> str:
    if not wait(name="approve", question="Ship it?", schema=bool, timeout=0):
        return "rejected"
    return shout(text).load()


def test_status_counts_executions_waiting_for_input(cli):
    assert cli("status", "-o", "json").json()["waiting_executions"] == 0
    assert "waiting:" not in cli("status").stdout
    handles = [approval.run("a"), approval.run("b")]
    for handle in handles:
        until_suspended(handle)
    assert cli("status", "-o", "json").json()["waiting_executions"] == 2
    assert "waiting:      2 executions wait for input" in cli("status").stdout
    cli("executions", "input", handles[0].exec_id, "--wait", "approve", "--value", "false")
    assert handles[0].wait() == "rejected"
    assert cli("status", "-o", "json").json()["waiting_executions"] == 1
    assert "waiting:      1 execution waits for input" in cli("status").stdout


def test_json_errors_keep_stdout_clean_for_scripts(cli):
    result = cli("stack", "show", "nowhere", "-o", "json")
    assert result.exit_code == 2
    assert result.stdout == ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)
