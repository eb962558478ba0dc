"""The project's code baked into a container image (`code: {source: image}`), checked by digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CodeMismatchError
from .code_package import code_digest


def image_code_root(ref: dict[str, Any]) -> Path:
    """The folder of the image's code (`ref["path"]`) once its digest is `ref["digest"]`.

    Raises `CodeMismatchError` (one line, both digests, the fix) when the folder is
    missing or holds other code than the runner's.
    """
    path = Path(ref["path"])
    expected = str(ref["digest"])
    fix = ("rebuild and push the image from the runner's code (`kitaru image dockerfile --out DIR`, "
           "then build it), or set the stack's `code: {source: package}`")
    if not path.is_dir():
        raise CodeMismatchError(
            f"the stack says the code is in the image at {path}, but this image has no folder "
            f"there (the runner's code has digest {expected[:16]}); {fix}"
        )
    found = code_digest(path, cached=False)
    if found != expected:
        raise CodeMismatchError(
            f"the code in this image at {path} has digest {found[:16]}, but the runner's code "
            f"has digest {expected[:16]}; {fix}"
        )
    return path
