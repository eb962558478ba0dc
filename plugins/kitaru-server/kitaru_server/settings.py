"""What a server process is started with (`kitaru server start` options)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """Options of one server process."""

    #: The stack whose registry and artifact store the server serves (None: the active one).
    stack: str | None = None
    #: Serve this registry instead of the stack's (`--registry`: a PostgreSQL URL or SQLite file).
    registry: str | None = None
    #: No authentication: every request acts as a local admin. Only on a loopback address
    #: (`kitaru server start --single-user` refuses any other host).
    single_user: bool = False
    #: Request bodies above this many bytes are refused with 413.
    max_body_bytes: int = 1024 * 1024
    #: Answers to waits (input, webhook) per second per API key, and the burst allowed.
    input_rate: float = 5.0
    input_burst: int = 20
    #: Seconds a verified API key is trusted without reading the registry again (a deleted
    #: or rotated key stops working within this time).
    key_cache_seconds: float = 2.0
    #: Seconds between two recovery sweeps (`recovery.py`: executions whose runner died are
    #: continued through the stack's orchestrator); 0 turns recovery off.
    recovery_seconds: float = 10.0
    #: Signs the dashboard's session cookies. None: a random secret made once and kept in the
    #: registry (a document), so every replica over that registry shares it.
    session_secret: str | None = None
    #: Seconds a dashboard login lasts (the API key's own expiry ends it sooner).
    session_max_age: float = 12 * 3600
