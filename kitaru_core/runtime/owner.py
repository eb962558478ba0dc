"""Who owns an execution, and whether that owner is still alive.

An owner id is `host:pid:start`, where `start` is the process's start time as
the kernel reports it, so a recycled pid is not mistaken for the old owner.
On the same host a dead owner is seen at once; elsewhere its lease must expire.
"""

from __future__ import annotations

import os
import socket
import time

LEASE_SECONDS = float(os.environ.get("KITARU_LEASE_SECONDS", "30"))


def process_start_token(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), or None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 22 (starttime) counted after the parenthesised command name.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def process_is_running(pid: int, start: str | None) -> bool:
    """True if `pid` is still the process that started at `start` and has not exited.

    An exited child nobody has reaped yet (a zombie) keeps its pid and start
    time, but it is not running.
    """
    token = process_start_token(pid)
    return token is not None and token == start and not _is_zombie(pid)


_HOST = socket.gethostname()
_HAS_PROC = os.path.exists("/proc/self/stat")  # else liveness falls back to the lease
_SELF = f"{_HOST}:{os.getpid()}:{process_start_token(os.getpid()) or int(time.time())}"


def self_owner() -> str:
    """This process's owner id."""
    pid = os.getpid()
    if f":{pid}:" not in _SELF:  # forked since import
        return f"{_HOST}:{pid}:{process_start_token(pid) or int(time.time())}"
    return _SELF


def parse_owner(owner: str) -> tuple[str, int, str]:
    host, pid, start = owner.rsplit(":", 2)
    return host, int(pid), start


def owner_is_alive(owner: str | None, lease_expires: float | None, now: float | None = None) -> bool:
    """False if the owner is known dead (same host) or its lease has expired."""
    if not owner:
        return False
    now = time.time() if now is None else now
    try:
        host, pid, start = parse_owner(owner)
    except ValueError:
        return lease_expires is not None and lease_expires > now
    if host == _HOST and _HAS_PROC:
        return process_is_running(pid, start)
    return lease_expires is not None and lease_expires > now


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def describe_owner(owner: str | None) -> str:
    if not owner:
        return "nobody"
    try:
        host, pid, _ = parse_owner(owner)
    except ValueError:
        return owner
    return f"process {pid} on {host}"
