"""Every command-line error is one line on stderr with an exit code: 2 for bad usage, 1 for
a failed or refused operation; `--debug` adds the traceback. Ids are matched by any unique
prefix, literally; values follow one rule on every command."""

from __future__ import annotations

import pytest
from conftest import run_cli

import kitaru
from kitaru import checkpoint, flow
from kitaru.errors import ArtifactNotFoundError, ExecutionNotFoundError, InvalidValueError
from kitaru_core.records import ExecutionRecord


@checkpoint
def research(topic: str) -> str:
    return f"notes on {topic}"


@checkpoint
def write(notes: str) -> str:
    return notes.upper()


@flow
def review(topic: str) -> str:
    return write(research(topic)).load()


def assert_one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kitaru: error: "), lines[0]
    assert len(lines[0]) < 1200
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in result.stderr and "╭" not in result.stderr


# -- exit codes, one line, --debug ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "help"),
    [
        (["stack", "bogus"], "No such command 'bogus'", "kitaru stack --help"),
        (["executions", "get"], "Missing argument", "kitaru executions get --help"),
        (["executions", "list", "--limit", "many"], "Invalid value for '--limit'",
         "kitaru executions list --help"),
        (["executions", "list", "--verbose"], "No such option: --verbose",
         "kitaru executions list --help"),
    ],
)
def test_usage_errors_are_one_line_exit_2_with_the_help_command(cli, args, message, help):
    assert_one_line_error(cli(*args), 2, message, f"(see `{help}`)")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(cli, monkeypatch):
    from kitaru.client import ExecutionsAPI

    def broken(self, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(ExecutionsAPI, "list", broken)
    plain = cli("executions", "list")
    assert_one_line_error(plain, 1, "ZeroDivisionError: division by zero", "kitaru --debug")
    debug = cli("--debug", "executions", "list")
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "in broken" in debug.stderr  # the frame that raised
    assert debug.stderr.strip().splitlines()[-1].startswith("kitaru: error: ZeroDivisionError")


def test_our_errors_show_their_traceback_only_with_debug(cli):
    quiet = cli("executions", "get", "feedbeef")
    assert_one_line_error(quiet, 1, "no execution 'feedbeef'")
    loud = cli("--debug", "executions", "get", "feedbeef")
    assert "Traceback" in loud.stderr and "ExecutionNotFoundError" in loud.stderr
    assert loud.exit_code == 1


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_the_documented_codes():
    usage = run_cli("executions", "list", "--limit", "many")
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
    failed = run_cli("executions", "list", "-n", "-1")
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
    assert "Traceback" not in usage.stderr + failed.stderr


# -- ids -----------------------------------------------------------------------------------


def _record(client, exec_id: str, status: str = "waiting") -> None:
    """An execution written straight into the registry, with an id chosen by the test."""
    client._stack.registry.create_execution(
        ExecutionRecord(exec_id=exec_id, flow_name="review", status=status, created_at=1.0)
    )


def test_any_unique_prefix_names_an_execution_and_an_ambiguous_one_lists_matches(cli, client):
    for exec_id in ("ab12" + "0" * 28, "ab34" + "0" * 28, "cd56" + "0" * 28):
        _record(client, exec_id)
    one = cli("executions", "get", "c", "-o", "json")
    assert one.exit_code == 0 and one.json()["exec_id"] == "cd56" + "0" * 28
    ambiguous = cli("executions", "get", "ab")
    assert_one_line_error(ambiguous, 1, "'ab' is ambiguous", "ab1200000000 (review, waiting)",
                          "ab3400000000", "give more characters")
    assert client.executions.get("ab3").exec_id == "ab34" + "0" * 28  # the client: the same
    with pytest.raises(ExecutionNotFoundError, match="'a' is ambiguous"):
        client.executions.get("a")


@pytest.mark.parametrize("pattern", ["%", "%%%%", "_", "____", "a%", "ab_", "%0"])
def test_percent_and_underscore_are_characters_never_wildcards(cli, client, pattern):
    _record(client, "ab12" + "0" * 28)
    result = cli("executions", "cancel", pattern)
    assert_one_line_error(result, 1, "no execution")
    assert client.executions.get("ab12").status.value == "waiting"  # nothing was cancelled


def test_an_id_with_percent_in_it_is_found_literally(client):
    _record(client, "50%_off")
    _record(client, "50x_off")
    assert client.executions.get("50%").exec_id == "50%_off"
    assert client.executions.get("50x").exec_id == "50x_off"


@pytest.mark.parametrize("command", ["get", "cancel", "logs", "resume", "input"])
def test_an_id_of_100_kb_is_one_line(cli, command):
    result = cli("executions", command, "a" * 100_000)
    assert_one_line_error(result, 1, "too long", "100,000 characters")


@pytest.mark.parametrize("command", ["show", "set", "delete"])
def test_a_stack_name_of_100_kb_is_one_line(cli, command):
    result = cli("stack", command, "s" * 100_000)  # a stack name is a file name: no OSError
    assert_one_line_error(result, 2, "not a valid stack name", "at most 100 characters")


def test_an_empty_id_is_refused(cli):
    assert_one_line_error(cli("executions", "get", ""), 1, "execution id is empty")


def test_an_artifact_prefix_is_literal_too(client):
    handle = review.run("x")
    handle.wait()
    art = client.executions.get(handle.exec_id).checkpoints[0].output
    assert client.artifacts.get(art.artifact_id[:6]).artifact_id == art.artifact_id
    with pytest.raises(ArtifactNotFoundError, match="no artifact '%'"):
        client.artifacts.get("%")


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_a_limit_below_one_is_refused(cli, client, limit):
    assert_one_line_error(cli("executions", "list", "-n", limit), 1, "--limit", limit)
    with pytest.raises(InvalidValueError, match="limit"):
        client.executions.list(limit=int(limit))


# -- values --------------------------------------------------------------------------------

DEEP = "[" * 50_000 + "]" * 50_000
HUGE = "9" * 5_000


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (DEEP, ("nested more than 128 levels",)),
        (HUGE, ("integer of 5,000 digits",)),
        ('{"a": [1, 2', ("is not valid JSON",)),
        ("1e999", ("beyond a float's range",)),
    ],
    ids=["deep", "huge-number", "broken-json", "huge-float"],
)
def test_bad_values_are_one_line_on_every_command(cli, client, value, words):
    handle = review.run("x")
    handle.wait()
    commands = [
        ("memory", "set", "k", value, "--scope", "team"),
        ("executions", "input", handle.exec_id, "--value", value),
        ("executions", "replay", handle.exec_id, "--at", "write",
         "--checkpoint-override", f"research={value}"),
        ("executions", "replay", handle.exec_id, "--at", "write", "--flow-override", f"topic={value}"),
    ]
    for args in commands:
        assert_one_line_error(cli(*args), 1, *words)
    assert [e.exec_id for e in client.executions.list()] == [handle.exec_id]  # no replay started
    assert client.memory.list(scope="team") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("3", 3), ('"42"', "42"), ("hello", "hello"), ("two words", "two words"),
     ('{"a": [1]}', {"a": [1]}), ("NaN", "NaN"), ("null", None)],
)
def test_one_rule_for_values_json_else_a_string(cli, client, text, value):
    assert cli("memory", "set", "k", text, "--scope", "team").exit_code == 0
    assert client.memory.get("k", scope="team") == value


@pytest.mark.parametrize(
    "override", ['research="fixed"', "research=fixed", 'research={"output": "fixed"}'],
    ids=["json-string", "bare-string", "output-wrapper"],
)
def test_a_checkpoint_override_sets_the_output_wrapper_or_not(cli, override):
    handle = review.run("x")
    handle.wait()
    result = cli("executions", "replay", handle.exec_id, "--at", "write",
                 "--checkpoint-override", override, "-o", "json")
    assert result.exit_code == 0, result
    replayed = result.json()["replay_exec_id"]
    assert kitaru.load(replayed, "output") == "FIXED"  # never {"output": ...} stored literally


def test_an_output_that_is_itself_a_wrapper_is_wrapped_once_more(cli):
    handle = review.run("x")
    handle.wait()
    result = cli("executions", "replay", handle.exec_id, "--at", "write", "-o", "json",
                 "--checkpoint-override", 'research={"output": {"output": "x"}}')
    assert result.exit_code == 1  # write() got a dict: .upper() fails, as it would in Python
    replayed = result.json()["replay_exec_id"]
    assert kitaru.load(replayed, "research") == {"output": "x"}


def test_a_huge_limit_means_all(cli, client):
    review.run("x").wait()
    listed = cli("executions", "list", "-n", "9" * 20, "-o", "json")
    assert listed.exit_code == 0 and len(listed.json()) == 1


def test_logs_of_a_checkpoint_the_execution_never_called_is_an_error(cli):
    handle = review.run("x")
    handle.wait()
    assert cli("executions", "logs", handle.exec_id, "--checkpoint", "research").exit_code == 0
    missing = cli("executions", "logs", handle.exec_id, "--checkpoint", "nope")
    assert_one_line_error(missing, 1, "'nope' names no checkpoint call", "research, write")


def test_a_memory_version_beyond_any_integer_column_is_one_line(cli):
    cli("memory", "set", "k", "1", "--scope", "team")
    assert_one_line_error(cli("memory", "get", "k", "--scope", "team", "--version", "9" * 20), 2,
                          "expected an int >= 1")


def test_the_help_page_names_the_exit_codes_and_debug(cli):
    page = " ".join(cli("--help").stdout.split())
    assert "exit code 1: the operation failed or was refused, 2: bad usage" in page
    assert "--debug" in page
