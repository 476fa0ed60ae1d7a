"""Read-only SQLite connections for tenant queries, and the pool of idle ones.

Every connection is read-only three times over: the ``mode=ro`` URI, ``PRAGMA
query_only`` and an authorizer that allows only reading. A query connection is an empty
in-memory database with the files the query names ATTACHed under their internal names;
opening and attaching cost far more than a small query, so idle connections are kept and
reused for a query that attaches exactly the same files under the same names (never
across tenants).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

from weaver.builtin.engine.paths import read_only_uri
from weaver.errors import EngineFailed, InvalidQuery

# How long a reader waits for a writer's lock before SQLite answers "database is locked";
# SQLite cannot interrupt this wait, so it stays short.
BUSY_TIMEOUT_SECONDS = 1.0
# The largest string or blob a tenant query may build (SQLite's default is 1 GB, which a
# `randomblob()` per worker thread would turn into gigabytes of memory).
MAX_VALUE_BYTES = 64 * 1024 * 1024

_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# Functions some SQLite builds carry that reach the file system or load code.
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})

# Which files a query connection has attached, under which aliases: (alias, path, device,
# inode) sorted. The inode makes a file replaced by a rename a different key, so a pooled
# connection never keeps reading the old file.
AttachmentKey = tuple[tuple[str, str, int, int], ...]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def open_read_only(uri: str) -> sqlite3.Connection:
    """A connection that may not write, whatever the URI says."""
    connection = sqlite3.connect(
        uri,
        uri=True,
        timeout=BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        # A pooled connection serves whichever engine thread takes it, one at a time.
        check_same_thread=False,
    )
    connection.execute("PRAGMA query_only = ON")
    return connection


class ReadOnlyAuthorizer:
    """SQLite's authorizer for tenant statements: reading only, and remembering a refusal
    so that it is reported as a refused statement rather than an engine failure."""

    def __init__(self) -> None:
        self.refused = False

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, via: str | None
    ) -> int:
        allowed = action in _READ_ACTIONS and not (
            action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS
        )
        self.refused = self.refused or not allowed
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY


@dataclass
class QueryConnection:
    key: AttachmentKey
    connection: sqlite3.Connection
    authorizer: ReadOnlyAuthorizer


def attach(key: AttachmentKey) -> QueryConnection:
    """A new query connection: an empty in-memory database with the files attached."""
    connection = open_read_only("file::memory:?mode=ro")
    try:
        most = connection.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)
        if len(key) > most:
            raise InvalidQuery(f"at most {most} datasources may be used in one query")
        for alias, file, _, _ in key:
            try:
                connection.execute(f"ATTACH DATABASE ? AS {quote(alias)}", (read_only_uri(file),))
            except sqlite3.Error:
                raise EngineFailed(f"the file of datasource {alias!r} cannot be opened") from None
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        authorizer = ReadOnlyAuthorizer()
        # Set once: setting an authorizer expires the connection's prepared statements.
        connection.set_authorizer(authorizer)
    except BaseException:
        connection.close()
        raise
    return QueryConnection(key, connection, authorizer)


class Pool:
    """Idle query connections, reused only for a query that attaches exactly the same
    files under the same internal names — so never across tenants — and closed when one
    of their datasources is unregistered."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[QueryConnection] = []

    def take(self, key: AttachmentKey) -> QueryConnection | None:
        with self._lock:
            for index in range(len(self._idle) - 1, -1, -1):
                if self._idle[index].key == key:
                    return self._idle.pop(index)
        return None

    def give(self, query_connection: QueryConnection) -> None:
        evicted = None
        with self._lock:
            self._idle.append(query_connection)
            if len(self._idle) > self._size:
                evicted = self._idle.pop(0)
        if evicted is not None:
            evicted.connection.close()

    def discard(self, alias: str) -> None:
        with self._lock:
            dropped = [c for c in self._idle if any(entry[0] == alias for entry in c.key)]
            self._idle = [c for c in self._idle if c not in dropped]
        for old in dropped:
            old.connection.close()

    def close(self) -> None:
        with self._lock:
            dropped, self._idle = self._idle, []
        for old in dropped:
            old.connection.close()

    def __len__(self) -> int:
        return len(self._idle)
