"""What request handlers share: configuration, database, change hub, liveness memory, the
shared parts of HostViews and the views served.  One per app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from dvr.db.session import Database
from dvr.server.config import LoadLimits, ServerConfig
from dvr.server.dbhealth import DatabaseHealth, is_unavailable
from dvr.server.errors import NeutronError, conflict
from dvr.server.group_commit import GroupCommit
from dvr.server.hostview_parts import SharedViewParts, shared_forms
from dvr.server.hostview_served import ServedViews
from dvr.server.known_credentials import KnownCredentials
from dvr.server.liveness import LivenessMemory
from dvr.server.liveness_keeper import LivenessKeeper
from dvr.server.loadshed import ViewGate
from dvr.server.pg_notify import ChangeListener, libpq_conninfo, send_change_notice
from dvr.server.serialize import JsonableCache
from dvr.server.services.notify import (
    NewChanges,
    current_revision,
    new_changes,
    newest_change_for_host,
    record_changes,
)
from dvr.server.shutdown_guard import shutting_down
from dvr.server.tx import ReadTx, WriteTx
from dvr.server.view_adoption import ViewAdoption
from dvr.server.watch import ChangeHub

T = TypeVar("T")

READ_TOGETHER_MAX = 32  # reads in one shared transaction (``read_together``)


def each_in_turn(tx: ReadTx, works: list[Callable[[ReadTx], Any]]) -> list[Any]:
    """Every read of ``works`` in ``tx``, one after the other: its result, or the error
    refusing it alone."""
    results: list[Any] = []
    for work in works:
        try:
            results.append(work(tx))
        except NeutronError as error:
            results.append(error)
    return results


@dataclass
class ServerContext:
    config: ServerConfig
    db: Database
    hub: ChangeHub
    liveness: LivenessMemory
    health: DatabaseHealth
    keeper: LivenessKeeper
    view_parts: SharedViewParts = field(default_factory=SharedViewParts)  # of HostViews
    served_views: ServedViews = field(default_factory=ServedViews)  # the bases of deltas
    view_forms: JsonableCache = field(default_factory=shared_forms)  # of answered views
    view_gate: ViewGate = field(default_factory=lambda: ViewGate(LoadLimits()))  # view turns
    view_adoption: ViewAdoption = field(default_factory=ViewAdoption)  # views agents hold
    credentials: KnownCredentials = field(default_factory=KnownCredentials)  # hosts' tokens
    _together: GroupCommit = field(init=False, repr=False)  # reads sharing a transaction

    def __post_init__(self) -> None:
        self._together = GroupCommit(self.read, each_in_turn, READ_TOGETHER_MAX)

    @classmethod
    def create(cls, config: ServerConfig, db: Database) -> ServerContext:
        memory = LivenessMemory()
        context = cls(
            config=config,
            db=db,
            hub=None,  # type: ignore[arg-type]
            liveness=memory,
            health=DatabaseHealth(retry_after=config.load.database_retry_after),
            keeper=None,  # type: ignore[arg-type]
            view_gate=ViewGate(config.load),
            credentials=KnownCredentials(sees_every_write=not db.is_postgres),
        )
        start = context.run_read(lambda tx: current_revision(tx.conn))
        follow = None
        if db.is_postgres:  # other processes' writes arrive by LISTEN/NOTIFY, not polling
            listener = ChangeListener(
                libpq_conninfo(db.engine.url), context.read_new_changes, seen=start,
                written=context.view_parts.written, credentials=context.credentials,
            )
            follow = listener.follow
        context.hub = ChangeHub(
            read_new_changes=context.read_new_changes,
            poll_interval=config.watch_poll_interval,
            follow=follow,
            latest=start,
            known_from=start,
        )
        context.keeper = LivenessKeeper(
            memory, context.write, config.heartbeat_flush_interval, config.agent_down_time
        )
        return context

    # -- synchronous (worker thread) ---------------------------------------------------------
    def run_write(self, work: Callable[[WriteTx], T]) -> tuple[T, int | None, set[str]]:
        """Run ``work`` in one serialized transaction; record its change rows; commit.

        Returns the work's result, the revision of its changes (None: nobody concerned) and
        the hosts concerned.  An unreachable database raises ``ServiceUnavailable`` (503)."""
        result, revision, hosts, _ = self._run_write(work)
        return result, revision, hosts

    def _run_write(self, work: Callable[[WriteTx], T]
                   ) -> tuple[T, int | None, set[str], tuple[tuple[str, str], ...]]:
        """``run_write``, and the subjects of the change rows (kind, id) for each host."""
        started = self.health.clock()
        try:
            with self.db.write() as conn:
                tx = WriteTx(conn=conn, config=self.config, liveness=self.liveness)
                result = work(tx)
                hosts = tx.impact.affected_hosts()
                subjects = tuple(tx.impact.subjects)
                revision = record_changes(
                    conn, hosts, subjects, self.config.retained_changes
                )
                changed = tx.impact.changed_parts() if revision is not None else None
                if revision is not None and self.db.is_postgres:
                    send_change_notice(conn, revision, hosts, changed, subjects)
        except IntegrityError as exc:
            raise conflict(
                "Conflict", f"The request conflicts with existing data: {exc.orig}"
            ) from None
        except SQLAlchemyError as exc:
            if is_unavailable(exc):
                raise self.health.failed(exc) from None
            raise
        self.health.succeeded(started)
        if changed is not None:  # committed: the next views may keep what it did not change
            self.view_parts.written(revision, changed)
        return result, revision, hosts, subjects

    def run_read(self, work: Callable[[ReadTx], T]) -> T:
        """``work`` in one read transaction; refused (503) once the server is shutting down:
        a read still queued for the thread pool then is of a request uvicorn cancels (or is
        about to), and the process would wait for every such read before it exits."""
        if self.hub is not None and self.hub.closed:
            raise shutting_down()
        started = self.health.clock()
        try:
            with self.db.read() as conn:
                result = work(ReadTx(conn=conn, config=self.config, liveness=self.liveness))
        except SQLAlchemyError as exc:
            if is_unavailable(exc):
                raise self.health.failed(exc) from None
            raise
        self.health.succeeded(started)
        return result

    # -- asynchronous (event loop) -----------------------------------------------------------
    async def write(self, work: Callable[[WriteTx], T]) -> T:
        loop = asyncio.get_running_loop()

        def write_and_publish() -> T:
            result, revision, hosts, subjects = self._run_write(work)
            if revision is not None:  # published even if the request is cancelled meanwhile
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(self.hub.publish, revision, hosts, subjects)
            return result

        return await run_in_threadpool(write_and_publish)

    async def read(self, work: Callable[[ReadTx], T]) -> T:
        return await run_in_threadpool(self.run_read, work)

    async def read_together(self, work: Callable[[ReadTx], T]) -> T:
        """``work`` in a read transaction it shares with the others submitted meanwhile
        (``GroupCommit``), one after the other in one thread: the watches one write woke
        whose views need the database then read the revision's shared parts once, and
        wait for no other thread's lock on them."""
        return await self._together.submit(work)

    async def read_revision(self) -> int:
        return await self.read(lambda tx: current_revision(tx.conn))

    async def read_new_changes(self, since: int) -> NewChanges:
        """The changes after ``since`` (``notify.NewChanges``): other processes' writes."""
        return await self.read(lambda tx: new_changes(tx.conn, since))

    async def host_revision(self, host: str) -> int:
        """The newest revision concerning ``host``: from memory, read once per host."""
        self.hub.start_following()  # keeps memory current with other processes' writes
        known = self.hub.host_revision(host)
        if known is None:
            newest = await self.read(lambda tx: newest_change_for_host(tx.conn, host))
            self.hub.note_host_revision(host, newest)
            known = self.hub.host_revision(host)
        return known or 0
