"""Engines and transactions.

Every request runs in exactly one transaction.  Write transactions are serialized:
an in-process lock (held by the Database object, one per app) plus, on SQLite,
``BEGIN IMMEDIATE`` and, on PostgreSQL, ``pg_advisory_xact_lock`` taken first thing in the
transaction (so several server processes on one PostgreSQL serialize too).  Reads on
PostgreSQL use REPEATABLE READ so that a multi-query read (a HostView) sees one snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

# arbitrary constant key of the advisory lock that serializes writers
WRITE_LOCK_KEY = 0x64767231  # "dvr1"
MIGRATION_LOCK_KEY = 0x64767232


class DatabaseDriverMissing(RuntimeError):
    """The database URL names a driver that is not installed."""


def normalize_url(url: str) -> str:
    """Use the psycopg (3) driver for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_postgres_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # let SQLAlchemy (below) decide when transactions begin
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("dvr_sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


SQLITE_POOL_SIZE = 40  # the request threads' limit (anyio's default thread pool)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # every connection the request threads (40 at most) use stays open: an
            # overflow connection would be closed on return and made again (with its
            # PRAGMAs) at the next burst, ~4 % of an idle server's CPU at 1,000 hosts
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=10,
        )
        _configure_sqlite(engine)
        return engine
    try:
        return create_engine(url, pool_size=5, max_overflow=30, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        extra = " (pip install 'dvr[postgresql]')" if exc.name == "psycopg" else ""
        raise DatabaseDriverMissing(
            f"the database URL needs the Python module {exc.name!r}, which is not "
            f"installed{extra}") from None


@dataclass
class Database:
    """One database, as used by one server process."""

    engine: Engine
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A serialized read-write transaction; commits on success, rolls back on error."""
        with self.write_lock, self.engine.connect() as conn:
            if self.is_postgres:
                conn.execution_options(isolation_level="READ COMMITTED")
            else:
                conn.execution_options(dvr_sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.is_postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction over one consistent snapshot."""
        with self.engine.connect() as conn:
            if self.is_postgres:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
