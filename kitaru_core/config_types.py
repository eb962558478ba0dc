"""Field types for flavor configs (the plugin contract): paths a stack file may name.

A stack runs from whatever folder a flow, a resume or a worker starts in, so a
relative path in a stack file would point somewhere else each time. Fields of
these types refuse one at `kitaru stack validate` / `register`, with the key named.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AfterValidator

_FIX = "write an absolute path, or start it with ${home}/ (the kitaru home) or ~/"


def _absolute(value: str) -> str:
    if not os.path.isabs(os.path.expanduser(value)):
        raise ValueError(
            f"{value!r} is a relative path, which depends on the folder kitaru runs from; {_FIX}"
        )
    return value


def _executable(value: str) -> str:
    # A bare name (`python3.12`) is looked up on PATH; anything with a folder in it must be absolute.
    if os.sep in value or (os.altsep and os.altsep in value):
        return _absolute(value)
    return value


#: A file or folder on this machine: absolute, `~/...` or `${home}/...` (resolved before validation).
AbsolutePath = Annotated[str, AfterValidator(_absolute)]

#: A program: a bare name found on PATH, or an absolute path to it.
Executable = Annotated[str, AfterValidator(_executable)]
