"""Per-host change streams: long-poll waiting, woken in-process when a write commits.

``ChangeHub.publish(revision, hosts, subjects)`` is called (in the event loop) after a write
commits, with the hosts that write concerned; only the waiters of those hosts wake and read
their change rows: from memory when the hub remembers the writes since the watch's revision
(``changes_known``, ``dvr.server.recent_writes``), else from the database.  Writes made by
other server processes sharing one database reach the hub in one of two ways:
- a *follower* (``follow``), on PostgreSQL: a task that runs from the hub's first use until
  it closes and feeds it every other process's commits as they happen (LISTEN/NOTIFY,
  ``dvr.server.pg_notify``);
- otherwise (SQLite) a poller that re-reads the newest revision every ``poll_interval``
  seconds while anyone is waiting and, when it moved, wakes the hosts named by the new
  change rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from dvr.server.recent_writes import RecentWrites, Subject
from dvr.server.services.notify import NewChanges

# the changes after ``since``, from the change rows
ReadNewChanges = Callable[[int], Awaitable[NewChanges]]
# runs until cancelled, publishing other processes' writes into the hub it is given
Follow = Callable[["ChangeHub"], Awaitable[None]]
MAX_HEARD_AHEAD = 1024  # revisions published past one not heard yet, kept to close the gap


@dataclass
class ChangeHub:
    read_new_changes: ReadNewChanges
    poll_interval: float = 1.0
    follow: Follow | None = None  # None: poll while anyone waits
    latest: int = 0
    _events: dict[str, asyncio.Event] = field(default_factory=dict)
    # host -> the newest revision known to concern it (heartbeat answers carry it)
    _host_revisions: dict[str, int] = field(default_factory=dict)
    _any: asyncio.Event | None = None  # set by every publish (the web view's global stream)
    # every revision in (known_from, _heard] was published with the hosts it concerns (None:
    # nothing known: a watch always reads its changes); ``known_from`` is the revision the
    # process started at, or the last one published as "possibly everyone"
    known_from: int | None = None
    _heard: int = 0
    _heard_ahead: set[int] = field(default_factory=set)  # published past a gap
    _waiters: int = 0
    _poller: asyncio.Task | None = None
    _follower: asyncio.Task | None = None
    _closed: bool = False
    # this process's newest writes with their change rows (``changes_known``)
    recent: RecentWrites = field(default_factory=RecentWrites)

    def __post_init__(self) -> None:
        if self.known_from is not None:
            self._heard = self.known_from

    @property
    def closed(self) -> bool:
        return self._closed

    def snapshot(self, host: str) -> asyncio.Event:
        """The event the next publish for ``host`` sets (take it BEFORE reading the database)."""
        event = self._events.get(host)
        if event is None:
            event = self._events[host] = asyncio.Event()
        return event

    def snapshot_any(self) -> asyncio.Event:
        """The event the next publish, whatever hosts it concerns, sets."""
        if self._any is None:
            self._any = asyncio.Event()
        return self._any

    def publish(self, revision: int, hosts: Collection[str] | None = None,
                subjects: Collection[Subject] | None = None) -> None:
        """``revision`` committed, concerning ``hosts`` (None: possibly everyone);
        ``subjects``: its change rows' (kind, id) for each of them, when known (a write of
        this process)."""
        if hosts is not None and subjects is not None:
            self.recent.wrote(revision, hosts, subjects)
        self.publish_each(revision, dict.fromkeys(hosts, revision) if hosts is not None else None,
                          since=revision - 1)

    def publish_new(self, new: NewChanges, since: int | None) -> None:
        """The revisions after ``since`` up to ``new.revision``, read from the change rows
        (other processes' writes): each revision's hosts and subjects, when read, are
        remembered as this process's own writes are (``changes_known``)."""
        for revision, (hosts, subjects) in sorted((new.writes or {}).items()):
            self.recent.wrote(revision, hosts, subjects)
        self.publish_each(new.revision, new.host_revisions, since=since)

    def publish_each(self, revision: int, host_revisions: Mapping[str, int] | None,
                     since: int | None = None) -> None:
        """Revisions up to ``revision`` committed; ``host_revisions``: each host concerned
        with the newest of them that concerns it (None: possibly everyone).  ``since``: every
        revision after it up to ``revision`` is in ``host_revisions`` (None: not known)."""
        self._hear(since, revision, exact=host_revisions is not None)
        self.latest = max(self.latest, revision)
        for host, newest in (host_revisions or {}).items():
            self.note_host_revision(host, newest)
        if self._any is not None:
            self._any.set()
            self._any = None
        targets = (
            list(self._events) if host_revisions is None
            else [h for h in host_revisions if h in self._events]
        )
        for host in targets:
            self._events.pop(host).set()

    def nothing_new(self, host: str, since: int) -> int | None:
        """The newest revision heard when none after ``since`` concerns ``host`` and this hub
        heard every one of them; None when it cannot tell (the database can)."""
        if self.known_from is None or not self.known_from <= since <= self._heard:
            return None
        if self._host_revisions.get(host, 0) > since:
            return None
        return self._heard

    def changes_known(self, host: str, since: int, retained_rows: int
                      ) -> tuple[int, list[Subject]] | None:
        """(the newest revision heard, the (kind, id) of ``host``'s changes after ``since``)
        when this hub heard every revision up to it and remembers each one's change rows
        (``RecentWrites``: a write of this process, or another's whose notice carried its
        subjects or whose rows it read); None: the database can tell."""
        if self.known_from is None or self._heard != self.latest:
            return None
        changes = self.recent.changes_for(host, since, self._heard, retained_rows)
        return None if changes is None else (self._heard, changes)

    def _hear(self, since: int | None, revision: int, exact: bool) -> None:
        """Revisions (since, revision] were published (``exact``: each with its hosts)."""
        if self.known_from is None or revision <= self._heard:
            return
        if not exact:  # possibly everyone: what is known starts again after ``revision``
            self.known_from = self._heard = revision
        elif since is not None and since <= self._heard:
            self._heard = revision
        elif since is not None and revision - since <= MAX_HEARD_AHEAD:
            self._heard_ahead.update(range(since + 1, revision + 1))
        else:
            self.known_from = self._heard = revision
        while self._heard + 1 in self._heard_ahead:
            self._heard += 1
        self._heard_ahead = {r for r in self._heard_ahead if r > self._heard}
        if len(self._heard_ahead) > MAX_HEARD_AHEAD:  # a gap that stays: start again past it
            self.known_from = self._heard = max(self._heard_ahead)
            self._heard_ahead = set()

    def host_revision(self, host: str) -> int | None:
        """The newest revision known to concern ``host`` (None: not known in this process)."""
        return self._host_revisions.get(host)

    def note_host_revision(self, host: str, revision: int) -> None:
        self._host_revisions[host] = max(self._host_revisions.get(host, 0), revision)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout``; True when woken by a publish."""
        if self._closed:
            return False
        self._waiters += 1
        self._ensure_poller()
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    def start_following(self) -> None:
        """Start the follower, if there is one and it is not running (call from the event
        loop; cheap when it runs already)."""
        if self.follow is None or self._closed:
            return
        if self._follower is None or self._follower.done():
            self._follower = asyncio.get_running_loop().create_task(self.follow(self))

    def _ensure_poller(self) -> None:
        if self.follow is not None:
            self.start_following()
        elif self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while self._waiters > 0 and not self._closed:
            await asyncio.sleep(self.poll_interval)
            try:
                new = await self.read_new_changes(self.latest)
            except Exception:  # noqa: BLE001 - a failed poll is retried on the next tick
                continue
            if new.revision > self.latest:
                self.publish_new(new, since=self.latest)

    async def close(self) -> None:
        """Wake everyone and stop polling and following (server shutdown)."""
        self._closed = True
        self.publish(self.latest)
        for task in (self._poller, self._follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
