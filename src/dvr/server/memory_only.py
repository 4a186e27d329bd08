"""A stand-in for a database connection where there is none: a view built with it
(``hostview.build_host_view``) uses only what memory holds (``hostview_parts``: the
revision's shared parts, the host's own rows while no write changed them), and any read it
would make raises ``NeedsDatabase`` instead: the caller then builds it in a transaction.

``MEMORY_ONLY_NOW`` is the same for a view built on the event loop: it must not wait for a
lock that a view being built in a thread holds while it reads the database
(``parts_locked``), so it raises ``PartsBusy`` then."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NeedsDatabase(Exception):
    """Building from memory needed a row that memory does not hold."""


class PartsBusy(NeedsDatabase):
    """Building on the event loop met a lock that a view built in a thread holds."""


class _NoDialect:
    name = "memory"


class MemoryOnly:
    """Has a ``dialect`` (named "memory") and nothing else: every other use raises
    ``NeedsDatabase``."""

    dialect = _NoDialect()

    def __getattr__(self, name: str) -> Any:
        raise NeedsDatabase(name)


MEMORY_ONLY: Any = MemoryOnly()
MEMORY_ONLY_NOW: Any = MemoryOnly()


@contextmanager
def parts_locked(lock: threading.Lock, conn: Any) -> Iterator[None]:
    """``lock`` held, as a view reading with ``conn`` may hold it: waiting for it, except
    with ``MEMORY_ONLY_NOW`` (busy: ``PartsBusy``)."""
    if not lock.acquire(blocking=conn is not MEMORY_ONLY_NOW):
        raise PartsBusy("the revision's shared parts (another view is reading them)")
    try:
        yield
    finally:
        lock.release()
