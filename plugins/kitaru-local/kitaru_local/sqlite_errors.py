"""SQLite failures as kitaru's typed, one-line errors (damaged file, read-only, disk full).

A damaged database must never look like an empty history, and a full or
read-only disk must never end in a traceback: every statement of the `sqlite`
registry goes through `translate` when it fails.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from kitaru_core.errors import RegistryDamagedError, StorageError

#: A 0-byte database file older than this is a truncated one, not one being created
#: (a creator writes the header within milliseconds of creating the file).
EMPTY_FILE_GRACE_SECONDS = 5.0


def damaged(path: Path, detail: str) -> RegistryDamagedError:
    return RegistryDamagedError(
        f"the registry at {path} is damaged ({detail}); restore it from a backup, or move it "
        "aside to start an empty history; `kitaru doctor --check` reports what is wrong"
    )


def translate(exc: sqlite3.Error, path: Path) -> Exception:
    """The kitaru error for a SQLite failure, or `exc` itself when it is none of those."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    text = str(exc)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or (
        "not a database" in text
    ):
        return damaged(path, text)
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return read_only(path)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return disk_full(path)
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return StorageError(
            f"the registry at {path} hit a disk I/O error ({text}); check the disk, then "
            "`kitaru doctor --check`"
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database" in text:
        return StorageError(
            f"cannot open the registry at {path} ({text}); check that its folder exists and "
            "is readable"
        )
    return exc


def read_only(path: Path) -> StorageError:
    return StorageError(
        f"the registry at {path} is read-only: kitaru can read it but not record anything; "
        "make the kitaru home writable, or set KITARU_HOME to a writable folder"
    )


def disk_full(path: Path) -> StorageError:
    return StorageError(
        f"the disk holding the registry at {path} is full; free space (for example "
        "`kitaru executions delete --older-than 30d`, then `kitaru gc --yes`) and try again"
    )


def check_not_truncated(path: Path) -> None:
    """Refuse a 0-byte database file that has been there a while: it was truncated.

    SQLite would take it for a new, empty database and show an empty history.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_size == 0 and time.time() - st.st_mtime > EMPTY_FILE_GRACE_SECONDS:
        wal = Path(f"{path}-wal")
        if not (wal.exists() and wal.stat().st_size > 0):
            raise damaged(path, "the file is empty (0 bytes) where a database was")


def writable(path: Path) -> bool:
    """True if the database (or, when missing, the folder that will hold it) can be written."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if path.exists() and not os.access(path, os.W_OK):
        return False
    return os.access(folder if not path.parent.exists() else path.parent, os.W_OK)
