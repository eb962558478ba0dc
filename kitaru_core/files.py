"""Small files under the kitaru home, replaced whole.

Settings, model aliases and the secrets key file are read by other processes at any
moment: each write goes to a temporary file of its own in the same folder and is
renamed over the old file, so a reader sees the old text or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write `text` to `path` atomically, the file getting `mode` (0o600 for a secret).

    The temporary file is unique to this call (not just to this process), so two
    threads saving one file at once each rename a whole file and the last one wins.
    It has `mode` from the start: a secret is never readable by others, not even briefly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
