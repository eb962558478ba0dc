"""Figure (b): time to resume a flow whose checkpoints are all recorded.

The child runs the n-checkpoint flow once; the body fails after its last
checkpoint, so the execution is `failed` with every call recorded. Then it
times a retry in this process (`kitaru_core.runtime.service.resume_here`,
what `kitaru executions retry` runs): claim the execution, re-run the body
from the top with every call answered from the record, record the result.

Per recorded checkpoint = resume time / n (the fixed cost of claiming and
finishing is included, so this is an upper bound). Baselines from the same
child: the first, live run of the flow, and the plain loop.
"""

from __future__ import annotations

import time
from typing import Any

NAME = "resume"
TARGET_PER_CHECKPOINT_S = 0.05e-3


def run(*, repeat: int, n: int = 1000) -> dict[str, Any]:
    from _harness import median, run_child

    results = [run_child(NAME, "resume", {"n": n}) for _ in range(repeat)]
    med = {k: median([r[k] for r in results]) for k in results[0]}
    per = med["resume_s"] / n
    return {
        "n": n,
        "repeat": repeat,
        "seconds": med,
        "samples": results,
        "per_checkpoint_s": {
            "resume": per,
            "live-run": med["live_run_s"] / n,
            "plain": med["plain_s"] / n,
        },
        "ratio_resume_to_live": med["resume_s"] / med["live_run_s"],
        "target": f"< {TARGET_PER_CHECKPOINT_S * 1e3} ms per recorded checkpoint",
        "met": per < TARGET_PER_CHECKPOINT_S,
    }


def _resume(params: dict[str, Any]) -> dict[str, Any]:
    import _flows

    from kitaru.flows import FlowHandle
    from kitaru_core.errors import FlowFailedError
    from kitaru_core.runtime.service import resume_here
    from kitaru_core.stack import get_stack

    n = params["n"]
    start = time.perf_counter()
    _flows.plain_loop(n)
    plain_s = time.perf_counter() - start

    _flows.chain.run(n, _flows.WARM_UP_START).wait()  # warm up, as figure (a) does
    _flows.FAIL_AT_END = True
    start = time.perf_counter()
    handle = _flows.chain.run(n)
    try:
        handle.wait()
        raise AssertionError("the first run should fail after its last checkpoint")
    except FlowFailedError:
        pass
    live_s = time.perf_counter() - start

    _flows.FAIL_AT_END = False
    stack = get_stack()
    start = time.perf_counter()
    record = resume_here(stack, handle.exec_id, mode="retry", flow=_flows.chain.__kitaru_flow__)
    resume_s = time.perf_counter() - start
    assert record.status == "completed", record.status
    assert FlowHandle(handle.exec_id, stack).wait() == _flows.expected_total(n)
    calls = stack.registry.get_calls(handle.exec_id)
    assert len(calls) == n and all(c.attempts == 1 for c in calls), "a recorded call ran again"
    return {"resume_s": resume_s, "live_run_s": live_s, "plain_s": plain_s}


if __name__ == "__main__":
    from _harness import child_main

    child_main({"resume": _resume})
