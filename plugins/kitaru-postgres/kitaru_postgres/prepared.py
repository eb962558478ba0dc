"""One statement sent through libpq's prepared-statement API, its parameters encoded here.

A checkpoint's record is one statement with ~40 parameters. Through
`Connection.execute` psycopg adapts each parameter in Python and builds a cursor
per call: ~60 us of the writing thread's CPU, as much as the rest of the
checkpoint. The columns' types are known in advance, so `PreparedStatement`
encodes each value with a fixed function per position and calls
`PGconn.exec_prepared` (psycopg's own libpq binding) on a pooled connection,
preparing the statement once per connection.

Only the success path is taken here: on any result but success, `run` returns
False and the caller runs the same statement through psycopg's normal
`execute`, which raises psycopg's typed error for it (an autocommit statement
that failed left nothing behind, so running it again is safe).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Encoder = Callable[[Any], "bytes | None"]

_JSON = json.JSONEncoder(default=repr)


def text(value: Any) -> bytes | None:
    """A `text` parameter."""
    return None if value is None else str(value).encode()


def integer(value: Any) -> bytes | None:
    """An `integer` or `bigint` parameter."""
    return None if value is None else str(int(value)).encode()


def double(value: Any) -> bytes | None:
    """A `double precision` parameter (repr is the shortest text that reads back exactly)."""
    return None if value is None else repr(float(value)).encode()


def jsonb(value: Any) -> bytes | None:
    """A `jsonb` parameter, in JSON text."""
    return None if value is None else _JSON.encode(value).encode()


def bytea(value: Any) -> bytes | None:
    """A `bytea` parameter, sent in binary format (see `BINARY`)."""
    return None if value is None else bytes(value)


#: Encoders whose parameters go in binary format; every other one is text.
BINARY: frozenset[Encoder] = frozenset({bytea})


def numbered(sql: str) -> str:
    """`sql` with psycopg's `%s` placeholders numbered as libpq's `$1`, `$2`, ..."""
    parts = sql.split("%s")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}{part}")
    return "".join(out)


class PreparedStatement:
    """A statement with a fixed list of parameter encoders, prepared per connection."""

    def __init__(self, name: str, sql: str, encoders: Sequence[Encoder]) -> None:
        if sql.count("%s") != len(encoders):
            raise ValueError(f"{name}: {sql.count('%s')} placeholders, {len(encoders)} encoders")
        self.name = name.encode()
        self.sql = sql  # psycopg's form, for the fallback
        self._numbered = numbered(sql).encode()
        self._encoders = tuple(encoders)
        self._formats = [1 if e in BINARY else 0 for e in self._encoders]
        # The connections this statement is prepared on (a connection the pool closed
        # leaves this set with it).
        self._prepared: weakref.WeakSet[Any] = weakref.WeakSet()

    def run(self, conn: psycopg.Connection, values: Sequence[Any]) -> bool:
        """Execute on `conn` (idle, autocommit); False if it did not succeed."""
        from psycopg import pq

        params = [enc(v) for enc, v in zip(self._encoders, values, strict=True)]
        with conn.lock:
            pg = conn.pgconn
            if pg.transaction_status != pq.TransactionStatus.IDLE:
                return False
            if conn not in self._prepared:
                res = pg.prepare(self.name, self._numbered)
                if res.status != pq.ExecStatus.COMMAND_OK:
                    return False
                self._prepared.add(conn)
            res = pg.exec_prepared(self.name, params, self._formats)
            if res.status == pq.ExecStatus.COMMAND_OK:
                return True
            if res.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
                self._prepared.discard(conn)  # deallocated meanwhile: prepare it again next time
            return False
