"""Values given on the command line: one rule for `input --value`, `replay` overrides and
`memory set`.

The rule (README, "Command line"): a value is JSON (`true`, `3`, `"text"`, `[1, 2]`,
`{"a": 1}`). Text that is not JSON is taken as the string itself (`--value yes` is the
string "yes"), unless it starts like JSON (`{`, `[` or `"`): then it was meant as JSON
and its syntax error is reported. A string that reads as JSON (`42`, `true`, `null`)
needs JSON quotes to stay a string: `'"42"'`.

Values are refused with a one-line `InvalidValueError` when they are nested deeper than
`MAX_DEPTH` levels, hold an integer longer than Python converts (4,300 digits by
default) or a float beyond its range (`1e999`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kitaru_core.errors import ConfigError, InvalidValueError

#: Deepest nesting of lists and objects a value may have (serde_json's default, too).
MAX_DEPTH = 128
_SHOWN = 40  # characters of a refused value quoted in its error


class _NotJson(Exception):
    """A constant (NaN, Infinity) that Python's parser accepts but JSON does not."""


def parse_value(text: str, what: str = "VALUE") -> Any:
    """The value `text` stands for, by the rule above; `what` names it in errors."""
    try:
        value = json.loads(text, parse_int=_int(what), parse_float=_float(what),
                           parse_constant=_constant)
    except RecursionError:
        raise InvalidValueError(
            f"{what} is nested more than {MAX_DEPTH} levels deep; pass a flatter value"
        ) from None
    except (json.JSONDecodeError, _NotJson) as exc:
        if text.lstrip()[:1] in ("{", "[", '"'):
            reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) \
                else f"{exc} is not JSON"
            raise InvalidValueError(
                f"{what} {_quote(text)} is not valid JSON ({reason}); fix it, or pass a plain "
                "string without leading {, [ or \""
            ) from None
        return text
    _check_depth(value, what)
    return value


def parse_assignments(items: list[str] | None, option: str) -> dict[str, Any]:
    """`NAME=VALUE` pairs of a repeated option; each VALUE by `parse_value`'s rule."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{option} expects NAME=VALUE, e.g. {option} research='\"notes\"' "
                              f"(got {_quote(item)})")
        out[name.strip()] = parse_value(value, f"{option} {name.strip()}=")
    return out


def _int(what: str) -> Any:
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0

    def parse(digits: str) -> int:
        count = len(digits.lstrip("-"))
        if limit and count > limit:
            raise InvalidValueError(
                f"{what} holds an integer of {count:,} digits, more than {limit:,}; "
                "pass it as a string (in JSON quotes)"
            )
        return int(digits)

    return parse


def _float(what: str) -> Any:
    def parse(text: str) -> float:
        number = float(text)
        if number in (float("inf"), float("-inf")):
            raise InvalidValueError(
                f"{what} holds the number {_quote(text)}, beyond a float's range; "
                "pass it as a string (in JSON quotes)"
            )
        return number

    return parse


def _constant(name: str) -> Any:
    raise _NotJson(name)


def _check_depth(value: Any, what: str) -> None:
    """Refuse values nested deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if not children:
            continue
        if depth >= MAX_DEPTH:
            raise InvalidValueError(
                f"{what} is nested more than {MAX_DEPTH} levels deep; pass a flatter value"
            )
        stack.extend((child, depth + 1) for child in children)


def _quote(text: str) -> str:
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + f"... ({len(text):,} characters)"
