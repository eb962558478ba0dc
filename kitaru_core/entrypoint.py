"""Run (or resume, or retry) an execution's flow body: what orchestrators launch.

    python -m kitaru_core.entrypoint resume <exec_id>
    python -m kitaru_core.entrypoint retry <exec_id>

The stack comes from KITARU_STACK_SPEC (set by the launcher), else the active one.
"""

from __future__ import annotations

import sys

from .errors import KitaruError
from .runtime.service import environment_stack, resume_here


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("resume", "retry"):
        print("usage: python -m kitaru_core.entrypoint resume|retry EXEC_ID", file=sys.stderr)
        return 2
    mode, exec_id = args
    try:
        record = resume_here(environment_stack(), exec_id, mode=mode, record_failure=True)
    except KitaruError as exc:
        print(f"kitaru: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"kitaru: execution {record.exec_id} is {record.status}")
    return 0 if record.status in ("completed", "waiting") else 1


if __name__ == "__main__":
    sys.exit(main())
