"""Stack specs as the server shows them: `${env:NAME}` references as written, never a value.

A stack file should hold secrets only as `${env:NAME}` or `${secret:NAME.KEY}` references
(resolved where a component is built, never here). A literal secret written into one anyway is masked:
the password of a URL (`postgresql://user:***@db/kitaru`) and any value under a key
that names a secret (`password`, `token`, `secret`, `api_key`, ...).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(
    r"pass(word|wd)?$|secret|token|api_?key|access_?key|private_?key|credential|"
    r"connection_?string|sas_?token|^key$", re.IGNORECASE)
# scheme://user:password@host: the password up to the last '@' of the authority.
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^/\s]*)(?P<at>@)")
_PLACEHOLDER = re.compile(
    r"^\$\{(env:[A-Za-z_][A-Za-z0-9_]*|secret:[A-Za-z0-9][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*|home)\}$")


def _text(key: str, value: str) -> str:
    if _PLACEHOLDER.match(value):
        return value
    if _SECRET_KEY.search(key) and "${env:" not in value and "${secret:" not in value:
        return MASK
    match = _URL_PASSWORD.match(value)
    if match and not _PLACEHOLDER.match(match.group("pw")):
        return match.group("head") + MASK + value[match.end("pw"):]
    return value


def redact(value: Any, key: str = "") -> Any:
    """`value` (a stack spec or part of one) with literal secrets masked."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return _text(key, value)
    return value
