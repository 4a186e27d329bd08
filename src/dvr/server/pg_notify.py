"""Change notification across server processes on one PostgreSQL (LISTEN/NOTIFY).

Sending: the write transaction that records change rows also sends ``NOTIFY dvr_changes``
(``send_change_notice``); PostgreSQL delivers it at commit, to every listener, in commit
order — writers are serialized by an advisory lock, so in revision order.

Receiving: every server process holds one dedicated connection that LISTENs
(``ChangeListener.follow``, the ``ChangeHub``'s follower) and publishes each notice into its
hub exactly as a local write does.  A notice that skips a revision (the connection was
lost, or the notice had too many hosts to carry) is replaced by reading the change rows
after the last revision it saw, so no change is missed: on every (re)connect the listener
first LISTENs, then catches up from the database.  A lost connection is logged once and
re-opened with a capped backoff; while it is down, watches keep waiting (writes by this
process still wake them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import URL, make_url

from dvr.server.change_notice import (
    CHANNEL,
    decode_credential_notice,
    decode_notice,
    encode_credential_notice,
    encode_notice,
)
from dvr.server.dbhealth import describe
from dvr.server.errors import ServiceUnavailable
from dvr.server.known_credentials import KnownCredentials
from dvr.server.services.notify import ChangedParts, Subject
from dvr.server.watch import ChangeHub, ReadNewChanges

log = logging.getLogger("dvr.server.notify")


def send_change_notice(conn: Connection, revision: int, hosts: set[str],
                       changed: ChangedParts | None = None,
                       subjects: Collection[Subject] = ()) -> None:
    """Notify the other server processes of ``revision`` (delivered when ``conn`` commits)."""
    conn.execute(select(func.pg_notify(
        CHANNEL, encode_notice(revision, hosts, changed, subjects))))


def send_credential_notice(conn: Connection, host: str) -> None:
    """Tell the other server processes that ``host``'s credential was rotated or revoked
    (delivered when ``conn`` commits; nothing on SQLite, where there are none)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(CHANNEL, encode_credential_notice(host))))


def libpq_conninfo(database_url: str | URL) -> str:
    """The SQLAlchemy URL as a libpq connection URI (psycopg's own)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


@dataclass
class ChangeListener:
    conninfo: str
    read_new_changes: ReadNewChanges
    check_interval: float = 10.0  # a quiet connection is checked (SELECT 1) this often
    max_backoff: float = 5.0
    seen: int | None = None  # the newest revision published from notices or the rows
    # told what each revision's write may have changed (``SharedViewParts.written``)
    written: Callable[[int, ChangedParts], None] | None = None
    # told of rotated or revoked credentials, and whether every such notice is heard
    credentials: KnownCredentials | None = None

    async def follow(self, hub: ChangeHub) -> None:
        """Feed ``hub`` every commit of every process, until cancelled."""
        import psycopg  # the optional extra (only PostgreSQL URLs get here)

        failures = 0
        lost_at = 0.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self.credentials is not None:
                        self.credentials.hearing_from_now()
                    await self.catch_up(hub)
                    if failures:
                        log.warning("change notifications from other server processes are "
                                    "back after %.1f s", time.monotonic() - lost_at)
                    failures = 0
                    try:
                        await self._receive_forever(conn, hub)
                    finally:  # however it ends: a credential notice may go unheard now
                        if self.credentials is not None:
                            self.credentials.deaf()
            except (psycopg.Error, OSError, ServiceUnavailable) as exc:
                failures += 1
                if failures == 1:
                    lost_at = time.monotonic()
                    log.error("lost the change notification connection (%s): reconnecting; "
                              "until then other server processes' writes wake no watcher "
                              "here", describe(exc))
                await asyncio.sleep(min(self.max_backoff, 0.25 * 2 ** min(failures, 8)))

    async def _receive_forever(self, conn, hub: ChangeHub) -> None:  # type: ignore[no-untyped-def]
        while True:
            async for notify in conn.notifies(timeout=self.check_interval):
                await self.receive(notify.payload, hub)
            await conn.execute("SELECT 1")  # quiet: is the connection still there?

    async def receive(self, payload: str, hub: ChangeHub) -> None:
        """Publish one notice (or, when it skips revisions, what the change rows say)."""
        host = decode_credential_notice(payload)
        if host is not None:
            if self.credentials is not None:
                self.credentials.forget_host(host)
            return
        notice = decode_notice(payload)
        if notice is None:
            log.debug("ignored a notice that is not ours: %.80r", payload)
            return
        if notice.changed is not None and self.written is not None:
            self.written(notice.revision, notice.changed)  # its views keep the rest
        if self.seen is not None and notice.revision <= self.seen:
            return  # already published by a catch-up
        if self.seen is None or notice.revision > self.seen + 1 or notice.hosts is None:
            await self.catch_up(hub)
            return
        self.seen = notice.revision
        hub.publish(notice.revision, notice.hosts, notice.subjects)

    async def catch_up(self, hub: ChangeHub) -> None:
        """Publish every change after the last one seen, from the change rows."""
        new = await self.read_new_changes(self.seen or 0)
        if self.seen is None or new.revision > self.seen:
            hub.publish_new(new, since=self.seen)
            self.seen = new.revision
