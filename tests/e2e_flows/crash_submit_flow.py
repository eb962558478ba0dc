"""recovery_flow's pipeline, with the runner SIGKILLed around its task's submission:

    KITARU_STACK=isolated KITARU_TEST_CRASH=before|after python crash_submit_flow.py WORKDIR

`before`: after the intent (task name, attempt) is recorded, before `submit`;
`after`: once `submit` started the worker, before the handle is recorded.
The `process` and `kubernetes` targets' `submit` are both wrapped, so the stack decides.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from kitaru_kubernetes.target import KubernetesTarget
from kitaru_local.targets import ProcessTarget
from recovery_flow import pipeline


def dies_around(submit: Any) -> Any:
    """`submit`, with the runner SIGKILLed before or after it (KITARU_TEST_CRASH)."""

    def submit_then_die(self, request):  # type: ignore[no-untyped-def]
        if os.environ["KITARU_TEST_CRASH"] == "after":
            submit(self, request)
        os.kill(os.getpid(), signal.SIGKILL)

    return submit_then_die


for target in (ProcessTarget, KubernetesTarget):
    target.submit = dies_around(target.submit)  # type: ignore[method-assign]

if __name__ == "__main__":
    pipeline.run(sys.argv[1], 10).wait()
