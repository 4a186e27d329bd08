"""Which hosts' own rows the writes a server process knows may have changed: answered in
constant time per host, over any number of revisions.

A view keeps a host's own rows (``hostview_parts.OwnRows``) read at revision A for revision
B while this process knows the write of every revision in (A, B] and none of them may have
changed them (``ChangedParts.own_rows``: the hosts a write named, or None for any host).
Asking that revision by revision costs B - A steps per host, and remembering only the last
few writes forgets them: 1,000 agents starting make ~2,000 revisions (registrations, host
MACs), after which every woken host read its rows again.  The ledger keeps instead, per
host, the newest revision that named it, the newest that may have changed any host's, and
the revisions not known (gaps: another process's revision not heard yet, a change notice
without its parts).  The answer is conservative: a host named, or a gap, after A says "read
again" even when that revision is beyond B.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

MAX_GAPS = 10_000  # revisions not known, tracked one by one; beyond: forget everything before


@dataclass
class OwnRowsLedger:
    # every revision in (floor, heard] is known but those in ``gaps``; None: nothing yet
    floor: int | None = None
    heard: int = 0
    gaps: set[int] = field(default_factory=set)
    everyone_at: int = 0  # the newest revision whose write may have changed any host's rows
    named_at: dict[str, int] = field(default_factory=dict)  # host -> newest naming it

    def written(self, revision: int, own_rows: Collection[str] | None) -> None:
        """The write of ``revision`` is known: it may have changed the own rows of
        ``own_rows`` (None: of any host)."""
        if self.floor is None:
            self.floor = self.heard = revision - 1
        if revision <= self.floor:
            return  # before what is tracked: such revisions count as not known
        if revision > self.heard:
            missing = revision - self.heard - 1
            if len(self.gaps) + missing > MAX_GAPS:
                self.floor, self.gaps = revision - 1, set()
            else:
                self.gaps.update(range(self.heard + 1, revision))
            self.heard = revision
        elif revision in self.gaps:
            self.gaps.discard(revision)
        else:
            return  # known already
        if own_rows is None:
            self.everyone_at = max(self.everyone_at, revision)
            return
        for host in own_rows:
            if self.named_at.get(host, 0) < revision:
                self.named_at[host] = revision

    def kept(self, host: str, read_at: int, revision: int) -> bool:
        """Whether ``host``'s own rows read at ``read_at`` are its rows at ``revision``."""
        if read_at == revision:
            return True
        if self.floor is None or not self.floor <= read_at < revision <= self.heard:
            return False
        if self.everyone_at > read_at or self.named_at.get(host, 0) > read_at:
            return False
        return not any(read_at < gap <= revision for gap in self.gaps)
