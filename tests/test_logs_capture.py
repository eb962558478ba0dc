"""stdout, stderr and `logging` output is kept per checkpoint call, also for
concurrent calls."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from kitaru import checkpoint, flow
from kitaru.errors import FlowFailedError

logger = logging.getLogger("kitaru_tests.logs")


def _text(entries) -> str:
    return "".join(e.text for e in entries)


def _by_stream(entries) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in entries:
        out[e.stream] = out.get(e.stream, "") + e.text
    return out


@checkpoint
def chatty(name: str) -> str:
    print(f"stdout of {name}")
    print(f"stderr of {name}", file=sys.stderr)
    logger.warning("log of %s", name)
    return name


@checkpoint
def quiet() -> int:
    return 0


@flow
def chatty_flow() -> str:
    print("from the flow body")
    first = chatty("one")
    quiet()
    second = chatty("two")
    return first.load() + second.load()


def test_each_stream_is_kept_per_call(client):
    handle = chatty_flow.run()
    assert handle.wait() == "onetwo"
    eid = handle.exec_id
    one = _by_stream(client.executions.logs(eid, checkpoint="chatty#1"))
    assert one == {
        "stdout": "stdout of one\n",
        "stderr": "stderr of one\n",
        "log": f"WARNING {logger.name}: log of one\n",
    }
    two = _by_stream(client.executions.logs(eid, checkpoint="chatty#2"))
    assert two["stdout"] == "stdout of two\n"
    assert "one" not in _text(client.executions.logs(eid, checkpoint="chatty#2"))
    # A checkpoint name selects all of its calls, in order.
    both = _text(e for e in client.executions.logs(eid, checkpoint="chatty") if e.stream == "stdout")
    assert both == "stdout of one\nstdout of two\n"
    assert client.executions.logs(eid, checkpoint="quiet#1") == []
    # Everything, including the flow body's own output (no call id).
    everything = client.executions.logs(eid)
    body = [e for e in everything if e.call_id is None]
    assert "from the flow body" in _text(body)
    assert {e.call_id for e in everything} == {None, "chatty#1", "chatty#2"}


def test_log_entries_resume_after_a_sequence_number(client):
    handle = chatty_flow.run()
    handle.wait()
    entries = client.executions.logs(handle.exec_id)
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    later = client.executions.logs(handle.exec_id, after=entries[0].seq)
    assert later == entries[1:]


@checkpoint
def below_level() -> None:
    logger.debug("not emitted: the logger's level filters it")
    logging.getLogger("kitaru_tests.verbose").error("emitted %d", 1)


@flow
def levels_flow() -> None:
    below_level()


def test_logging_keeps_only_records_the_loggers_emit(client):
    handle = levels_flow.run()
    handle.wait()
    logs = _text(client.executions.logs(handle.exec_id, checkpoint="below_level"))
    assert logs == "ERROR kitaru_tests.verbose: emitted 1\n"


# -- concurrent calls ----------------------------------------------------------------------

_LINES = 40
_barrier_holder: dict[str, threading.Barrier] = {}


@checkpoint
def interleaved(worker: int) -> int:
    barrier = _barrier_holder["barrier"]
    barrier.wait()  # all workers print at the same time
    for line in range(_LINES):
        print(f"worker {worker} line {line}")
        if line % 10 == 0:
            print(f"worker {worker} err {line}", file=sys.stderr)
            logger.warning("worker %d log %d", worker, line)
    barrier.wait()
    return worker


@flow
def interleaved_flow(workers: int) -> list[int]:
    return [h.load() for h in interleaved.map(range(workers))]


def test_concurrent_calls_keep_their_own_output(client):
    workers = 4
    _barrier_holder["barrier"] = threading.Barrier(workers, timeout=10)
    handle = interleaved_flow.run(workers)
    assert handle.wait(timeout=30) == list(range(workers))
    for worker in range(workers):
        streams = _by_stream(client.executions.logs(handle.exec_id, checkpoint=f"interleaved#{worker + 1}"))
        assert streams["stdout"] == "".join(f"worker {worker} line {i}\n" for i in range(_LINES))
        assert streams["stderr"] == "".join(f"worker {worker} err {i}\n" for i in range(0, _LINES, 10))
        assert streams["log"] == "".join(
            f"WARNING {logger.name}: worker {worker} log {i}\n" for i in range(0, _LINES, 10)
        )


@checkpoint(retries=1, retry_delay=0.01)
def fails_then_prints() -> str:
    attempts = _attempts.setdefault("n", 0) + 1
    _attempts["n"] = attempts
    print(f"attempt {attempts}")
    if attempts == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


_attempts: dict[str, int] = {}


@flow
def retry_logs_flow() -> str:
    return fails_then_prints().load()


def test_output_of_every_attempt_is_kept(client):
    _attempts.clear()
    handle = retry_logs_flow.run()
    assert handle.wait() == "ok"
    streams = _by_stream(client.executions.logs(handle.exec_id, checkpoint="fails_then_prints#1"))
    assert streams["stdout"] == "attempt 1\nattempt 2\n"
    assert "attempt 1 failed: RuntimeError('first attempt fails')" in streams["stderr"]


@checkpoint
def fails_loudly() -> None:
    print("last words")
    raise ValueError("bad")


@flow
def failing_logs_flow() -> None:
    fails_loudly()


def test_output_of_a_failed_call_is_kept(client):
    handle = failing_logs_flow.run()
    with pytest.raises(FlowFailedError, match="bad"):
        handle.wait()
    assert _text(client.executions.logs(handle.exec_id, checkpoint="fails_loudly")) == "last words\n"


def test_output_still_reaches_the_terminal(capsys):
    chatty_flow.run().wait()
    out, err = capsys.readouterr()
    assert "stdout of one" in out
    assert "stderr of two" in err
