"""What request handlers share: configuration, database, change hub, the shared parts of
HostViews and the views served.  One per app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from dvr.db.session import Database
from dvr.server.config import ServerConfig
from dvr.server.errors import conflict
from dvr.server.hostview_parts import SharedViewParts
from dvr.server.hostview_served import ServedViews
from dvr.server.services.notify import current_revision, new_changes, record_changes
from dvr.server.tx import ReadTx, WriteTx
from dvr.server.watch import ChangeHub

T = TypeVar("T")


@dataclass
class ServerContext:
    config: ServerConfig
    db: Database
    hub: ChangeHub
    view_parts: SharedViewParts = field(default_factory=SharedViewParts)  # of HostViews
    served_views: ServedViews = field(default_factory=ServedViews)  # the bases of deltas

    @classmethod
    def create(cls, config: ServerConfig, db: Database) -> ServerContext:
        context = cls(config=config, db=db, hub=None)  # type: ignore[arg-type]
        context.hub = ChangeHub(
            read_new_changes=context.read_new_changes, poll_interval=config.watch_poll_interval
        )
        return context

    # -- synchronous (worker thread) ---------------------------------------------------------
    def run_write(self, work: Callable[[WriteTx], T]) -> tuple[T, int | None, set[str]]:
        """Run ``work`` in one serialized transaction; record its change rows; commit.

        Returns the work's result, the revision of its changes (None: nobody concerned) and
        the hosts concerned."""
        try:
            with self.db.write() as conn:
                tx = WriteTx(conn=conn, config=self.config)
                result = work(tx)
                hosts = tx.impact.affected_hosts()
                revision = record_changes(
                    conn, hosts, tx.impact.subjects, self.config.retained_changes
                )
        except IntegrityError as exc:
            raise conflict(
                "Conflict", f"The request conflicts with existing data: {exc.orig}"
            ) from None
        return result, revision, hosts

    def run_read(self, work: Callable[[ReadTx], T]) -> T:
        with self.db.read() as conn:
            return work(ReadTx(conn=conn, config=self.config))

    # -- asynchronous (event loop) -----------------------------------------------------------
    async def write(self, work: Callable[[WriteTx], T]) -> T:
        result, revision, hosts = await run_in_threadpool(self.run_write, work)
        if revision is not None:
            self.hub.publish(revision, hosts)
        return result

    async def read(self, work: Callable[[ReadTx], T]) -> T:
        return await run_in_threadpool(self.run_read, work)

    async def read_revision(self) -> int:
        return await self.read(lambda tx: current_revision(tx.conn))

    async def read_new_changes(self, since: int) -> tuple[int, set[str]]:
        """The newest revision and the hosts with changes after ``since`` (other replicas)."""
        return await self.read(lambda tx: new_changes(tx.conn, since))
