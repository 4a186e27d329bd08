"""A stand-in for a database connection where there is none: a view built with it
(``hostview.build_host_view``) uses only what memory holds (``hostview_parts``: the
revision's shared parts, the host's own rows while no write changed them), and any read it
would make raises ``NeedsDatabase`` instead: the caller then builds it in a transaction."""

from __future__ import annotations

from typing import Any


class NeedsDatabase(Exception):
    """Building from memory needed a row that memory does not hold."""


class _NoDialect:
    name = "memory"


class MemoryOnly:
    """Has a ``dialect`` (named "memory") and nothing else: every other use raises
    ``NeedsDatabase``."""

    dialect = _NoDialect()

    def __getattr__(self, name: str) -> Any:
        raise NeedsDatabase(name)


MEMORY_ONLY: Any = MemoryOnly()
