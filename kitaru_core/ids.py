"""Ids given by people: checks, prefix ranges and messages shared by every registry.

An execution or artifact id may be given as any unique prefix of one character or more.
A prefix is matched literally (`%` and `_` are characters like any other, never
wildcards): a registry looks it up as the range `prefix_range(prefix)` of its id index
and keeps the ids that start with it. More than one match is an error listing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import ArtifactNotFoundError, ExecutionNotFoundError, InvalidValueError
from .records import ArtifactRecord, ExecutionRecord

T = TypeVar("T")

#: Longest id (or prefix) a registry looks up; kitaru's own ids have 32 characters.
MAX_ID_LENGTH = 128
#: Matches an ambiguous prefix's error lists (a registry fetches one more to say "more").
SHOWN_MATCHES = 5
_QUOTED = 40


def check_id(kind: str, text: str) -> None:
    """Refuse an id that no registry could hold: empty, too long, or not valid text.

    `kind` names it in the message ("execution", "artifact").
    """
    if not isinstance(text, str):
        raise InvalidValueError(f"an {kind} id is a string, not {type(text).__name__}")
    if not text:
        raise InvalidValueError(f"the {kind} id is empty; give an id or a prefix of one")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidValueError(
            f"{kind} id {quoted(text)} is too long: an id has at most {MAX_ID_LENGTH} characters"
        )
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidValueError(f"{kind} id {quoted(text)} is not valid text (UTF-8)") from None


def prefix_range(prefix: str) -> tuple[str, str]:
    """(low, high): every string that starts with `prefix` sorts in [low, high) by code point."""
    return prefix, prefix + "\U0010ffff"


def quoted(text: str) -> str:
    """`text` quoted for a message, cut to a readable length."""
    if len(text) <= _QUOTED:
        return repr(text)
    return repr(text[:_QUOTED]) + f"... ({len(text):,} characters)"


def ambiguous_message(kind: str, prefix: str, matches: Sequence[str], more: bool) -> str:
    """The error of a prefix that several ids start with; `matches` describe them."""
    shown = "; ".join(matches[:SHOWN_MATCHES])
    tail = " and more" if more or len(matches) > SHOWN_MATCHES else ""
    return (f"{kind} id prefix {quoted(prefix)} is ambiguous: it matches {shown}{tail}; "
            "give more characters")


def one_execution(
    given: str,
    *,
    exact: Callable[[str], list[ExecutionRecord]],
    by_prefix: Callable[[str], list[ExecutionRecord]],
    where: str,
) -> ExecutionRecord:
    """The execution whose id is `given`, else the one whose id starts with it.

    `exact` and `by_prefix` fetch from a registry (`by_prefix` at most SHOWN_MATCHES + 1
    records, see `prefix_range`); `where` names the registry in the not-found message.
    """
    return _one(
        "execution", given, exact, by_prefix, ExecutionNotFoundError,
        lambda e: f"{e.exec_id[:12]} ({e.flow_name}, {e.status})",
        lambda: f"no execution {quoted(given)} in the registry at {where}; list executions "
        "with `kitaru executions list` (or check the stack with KITARU_STACK)",
    )


def one_artifact(
    given: str,
    *,
    exact: Callable[[str], list[ArtifactRecord]],
    by_prefix: Callable[[str], list[ArtifactRecord]],
) -> ArtifactRecord:
    """The artifact whose id is `given`, else the one whose id starts with it (see
    `one_execution`)."""
    return _one(
        "artifact", given, exact, by_prefix, ArtifactNotFoundError,
        lambda a: f"{a.artifact_id[:12]} ({a.name}, execution {a.exec_id[:12]})",
        lambda: f"no artifact {quoted(given)}; list them with `kitaru executions get EXEC_ID`",
    )


def _one(
    kind: str, given: str, exact: Callable[[str], list[T]], by_prefix: Callable[[str], list[T]],
    error: type[Exception], describe: Callable[[T], str], missing: Callable[[], str],
) -> T:
    """The one record `exact` or else `by_prefix` finds; `error` with the matches described,
    or with the `missing()` message, when several or none do."""
    check_id(kind, given)
    found = exact(given) or by_prefix(given)
    if len(found) > 1:
        raise error(ambiguous_message(
            kind, given, [describe(r) for r in found], more=len(found) > SHOWN_MATCHES
        ))
    if not found:
        raise error(missing())
    return found[0]
