"""What an API key may do: `read` < `operator` < `admin`, each including the ones before it."""

from __future__ import annotations

from typing import Literal

Scope = Literal["read", "operator", "admin"]

#: Every scope, weakest first.
SCOPES: tuple[Scope, ...] = ("read", "operator", "admin")

#: What each scope is for (`kitaru auth api-keys create --help` and docs/server.md).
MEANINGS: dict[Scope, str] = {
    "read": "list and read executions, logs, artifacts, memory, stacks and statistics",
    "operator": "also answer waits, resume, retry, replay, cancel and run flows; runners and workers",
    "admin": "also delete executions and manage service accounts, API keys and secrets",
}


def allows(granted: str, needed: str) -> bool:
    """Whether a key with scope `granted` may do what needs `needed`."""
    return SCOPES.index(granted) >= SCOPES.index(needed)  # type: ignore[arg-type]


def check_scope(value: str) -> Scope:
    """`value` as a scope, or a one-line `InvalidValueError` naming the choices."""
    from kitaru_core.errors import InvalidValueError

    if value not in SCOPES:
        raise InvalidValueError(f"scope {value!r} is not one of {', '.join(SCOPES)}; pick one")
    return value  # type: ignore[return-value]
