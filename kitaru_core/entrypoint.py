"""Run (or resume, or retry) an execution's flow body: what orchestrators launch.

    python -m kitaru_core.entrypoint resume|retry EXEC_ID
    python -m kitaru_core.entrypoint resume|retry EXEC_ID --registry-flavor F --registry-config JSON \\
        --store-flavor F --store-config JSON [--code-package KEY | --code-image PATH --code-digest D]

The first form (a runner on this machine) takes the stack from KITARU_STACK_SPEC (set by
the launcher), else the active one. The second is a remote runner's (`runtime.remote_launch`):
the execution's frozen stack is read from the registry it names, the flow's code from the
store's code package or the image.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import KitaruError
from .runtime import termination


def main(argv: list[str] | None = None) -> int:
    from .runtime.remote_launch import add_arguments, remote_stack

    parser = argparse.ArgumentParser(prog="python -m kitaru_core.entrypoint",
                                     description="Continue an execution's flow body.")
    parser.add_argument("mode", choices=("resume", "retry"))
    parser.add_argument("exec_id")
    add_arguments(parser)
    try:
        ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    termination.launched_runner()  # SIGTERM stops this runner in order (a cancel reaches it)
    try:
        from .runtime.service import environment_stack, resume_here

        stack = remote_stack(ns, ns.exec_id) if ns.registry_flavor else environment_stack()
        record = resume_here(stack, ns.exec_id, mode=ns.mode, record_failure=True)
    except KitaruError as exc:
        print(f"kitaru: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"kitaru: execution {record.exec_id} is {record.status}"
          + (" (its runner was stopped)" if termination.stopping() else ""))
    return 0 if record.status in ("completed", "waiting") else 1


if __name__ == "__main__":
    code = main()
    if termination.stopping():
        # Stopped: everything is recorded; calls still running in worker threads (submitted
        # concurrently) must not hold the process until they end.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
