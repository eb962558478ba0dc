"""recovery_flow's pipeline, with the runner SIGKILLed around its task's submission:

    KITARU_STACK=isolated KITARU_TEST_CRASH=before|after python crash_submit_flow.py WORKDIR

`before`: after the intent (task name, attempt) is recorded, before `submit`;
`after`: once `submit` started the worker, before the handle is recorded.
"""

from __future__ import annotations

import os
import signal
import sys

from kitaru_local.targets import ProcessTarget
from recovery_flow import pipeline

_submit = ProcessTarget.submit


def submit_then_die(self, request):  # type: ignore[no-untyped-def]
    if os.environ["KITARU_TEST_CRASH"] == "after":
        _submit(self, request)
    os.kill(os.getpid(), signal.SIGKILL)


ProcessTarget.submit = submit_then_die  # type: ignore[method-assign]

if __name__ == "__main__":
    pipeline.run(sys.argv[1], 10).wait()
