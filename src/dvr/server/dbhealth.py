"""Database outages are load, not bugs: while the database is unreachable (PostgreSQL
restarting, a network cut, every pooled connection busy) requests answer 503
``ServiceUnavailable`` with ``Retry-After``, and the server logs one line when an outage
starts and one, with its duration, when it ends — not a traceback per request.  A
transaction cut off by the outage has rolled back: nothing is half-written."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc

from dvr.server.errors import ServiceUnavailable

log = logging.getLogger("dvr.server.database")

# SQLite's OperationalErrors that are load or an unreachable file; the others ("no such
# table", syntax) are bugs and stay 500s
SQLITE_UNAVAILABLE = ("database is locked", "unable to open", "disk i/o error", "database is busy")


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be reached or is overloaded (asking
    again later can work), rather than that the request or the code is wrong."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return False
    if isinstance(error.orig, sqlite3.Error):
        return any(text in str(error.orig).lower() for text in SQLITE_UNAVAILABLE)
    return True


def describe(error: BaseException) -> str:
    """The first line of the driver's message (no SQL, no parameters)."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


@dataclass
class DatabaseHealth:
    """Whether the database answers, as this process last saw it; logs each outage once."""

    retry_after: int = 5
    clock: Callable[[], float] = time.monotonic
    _down_since: float | None = None
    _failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException) -> ServiceUnavailable:
        """Record a failure that ``is_unavailable``; returns the error to answer with."""
        with self._lock:
            self._failures += 1
            if self._down_since is None:
                self._down_since = self.clock()
                log.error("database unreachable (%s): answering 503 until it is back",
                          describe(error))
        return ServiceUnavailable(
            "The database is unreachable; retry later.", retry_after=self.retry_after
        )

    def succeeded(self, started: float) -> None:
        """An operation that began at ``started`` (``clock()``) worked: if it began after
        the outage did, the outage is over (one that began before proves nothing)."""
        if self._down_since is None:  # the common case, without the lock
            return
        with self._lock:
            if self._down_since is None or started < self._down_since:
                return
            duration = self.clock() - self._down_since
            log.warning("database reachable again after %.1f s (%d requests answered 503)",
                        duration, self._failures)
            self._down_since = None
            self._failures = 0
