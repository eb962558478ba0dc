"""Each run's ticker thread starts once the run has lasted a tick: a short flow starts none,
a long one gets its own (running records, logs, cancel checks, lease renewal)."""

from __future__ import annotations

import threading
import time

from kitaru import checkpoint, flow
from kitaru_core.runtime.delayed_start import DelayedStarter


def _until(predicate, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def test_keys_start_in_order_after_the_delay_unless_discarded_first():
    started: list[str] = []
    starter = DelayedStarter(0.05, started.append)
    began = time.monotonic()
    for key in ("a", "b", "c"):
        starter.add(key)
    starter.discard("b")
    _until(lambda: len(started) == 2, "a and c started")
    assert started == ["a", "c"] and time.monotonic() - began >= 0.05
    assert starter.pending() == 0
    time.sleep(0.15)
    assert started == ["a", "c"]  # a discarded key never starts


def test_a_start_that_raises_does_not_stop_the_next_ones():
    started: list[str] = []

    def start(key: str) -> None:
        if key == "bad":
            raise RuntimeError("this one fails")
        started.append(key)

    starter = DelayedStarter(0.01, start)
    starter.add("bad")
    starter.add("good")
    _until(lambda: started == ["good"], "the key after a failing one started")


def _tickers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("kitaru-tick-")
            and t.name != "kitaru-tick-starter"]


#: Ticker threads alive while `quick` ran (the old way started one with every run).
seen_in_call: list[list[str]] = []


@checkpoint
def quick(x: int) -> int:
    seen_in_call.append(_tickers())
    return x + 1


@checkpoint
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@flow
def short_flow() -> int:
    return quick(1).load()


@flow
def long_flow(seconds: float) -> str:
    return slow(seconds).load()


def test_a_short_flow_starts_no_ticker_and_a_long_one_writes_its_running_record(client):
    seen_in_call.clear()
    assert short_flow() == 2
    assert seen_in_call == [[]]  # no ticker of its own while its body ran

    handle = long_flow.run(3.0)
    _until(lambda: any(c.status == "running" for c in client.executions.get(handle.exec_id).checkpoints),
           "the long call's running record (written by the run's ticker)")
    assert any(name.startswith(f"kitaru-tick-{handle.exec_id[:8]}") for name in _tickers())
    assert handle.wait() == "done"
    _until(lambda: not any(name.startswith(f"kitaru-tick-{handle.exec_id[:8]}") for name in _tickers()),
           "the ticker thread ended with the run")
