"""The change rows of the newest writes, in memory: what a woken watch would read
of the database (``notify.changes_for_host``), answered without a transaction.

A write that commits here is remembered with the hosts it concerned and its subjects (the
(kind, id) pairs ``notify.record_changes`` wrote for each of those hosts, in that order);
so is another process's, when its notice carried both or its change rows were read
(``ChangeHub.publish_new``).
The changes for a host after revision S are then those of the remembered revisions after S
that name it, in revision order, each pair once: exactly the rows the database holds, as
long as every revision after S is remembered (one heard of without its subjects is not: the
caller then reads the database) and the
database still holds them all (no more rows were written after S than it retains: pruning
drops the oldest rows first, so then none of these is dropped, and none of the rows it drops
is newer than S).  Pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field

from dvr.server.services.notify import WRITES_READ_MAX, Subject

# revisions remembered: as many as another process's writes are read one by one
WINDOW = WRITES_READ_MAX


@dataclass(frozen=True)
class RecentWrite:
    hosts: frozenset[str]
    subjects: tuple[Subject, ...]

    @property
    def rows(self) -> int:
        """The change rows the write made (one per host and subject)."""
        return len(self.hosts) * len(self.subjects)


@dataclass
class RecentWrites:
    """The last ``window`` revisions written with their change rows' hosts and subjects."""

    window: int = WINDOW
    _writes: OrderedDict[int, RecentWrite] = field(default_factory=OrderedDict)

    def wrote(self, revision: int, hosts: Collection[str], subjects: Collection[Subject]
              ) -> None:
        """``revision`` committed with a change row per host of ``hosts`` and subject of
        ``subjects`` (in that order).  A revision known already is kept as it is (its rows
        never change)."""
        if revision in self._writes:
            return
        self._writes[revision] = RecentWrite(frozenset(hosts), tuple(subjects))
        self._writes.move_to_end(revision)
        while len(self._writes) > self.window:
            self._writes.popitem(last=False)

    def changes_for(self, host: str, since: int, upto: int, retained_rows: int
                    ) -> list[Subject] | None:
        """The (kind, id) of ``host``'s change rows in revisions (``since``, ``upto``],
        oldest first, each once; None when not every revision between is remembered, or
        more rows than the database retains (``retained_rows``) were written since."""
        if not 0 <= since <= upto or upto - since > self.window:
            return None
        seen: dict[Subject, None] = {}
        rows = 0
        for revision in range(since + 1, upto + 1):
            write = self._writes.get(revision)
            if write is None:
                return None
            rows += write.rows
            if host in write.hosts:
                for subject in write.subjects:
                    seen.setdefault(subject, None)
        if rows > retained_rows:
            return None
        return list(seen)
