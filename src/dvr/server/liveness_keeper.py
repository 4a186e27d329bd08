"""Receives heartbeats: written at once when they say something new, kept in memory and
flushed in one batch every ``interval`` seconds otherwise (``dvr.server.liveness``).

"At once" is a group commit: a heartbeat that must be written starts a transaction when
none of them is being written, and those that come while one is written go together into
the next (1,000 agents reporting their first view after a start make a few dozen
transactions, not 1,000), at most ``MAX_GROUP`` in one: every write of the process, and of
every other server process on the database, waits while one is written.  A lone heartbeat
waits for nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from dvr.server.errors import NeutronError
from dvr.server.liveness import Heartbeat, LivenessMemory
from dvr.server.services.heartbeats import flush_heartbeats, write_heartbeats
from dvr.server.tx import WriteTx

log = logging.getLogger("dvr.server.liveness")
T = TypeVar("T")
MAX_GROUP = 256  # heartbeats in one transaction
Write = Callable[[Callable[[WriteTx], T]], Awaitable[T]]


@dataclass
class LivenessKeeper:
    memory: LivenessMemory
    write: Write  # ServerContext.write: one serialized transaction, changes published
    interval: float
    agent_down_time: int
    _task: asyncio.Task | None = None
    _closed: bool = False
    # heartbeats to write at once, with who waits for each, while a transaction is written
    _queued: list[tuple[Heartbeat, asyncio.Future]] = field(default_factory=list)
    _writer: asyncio.Task | None = None

    async def receive(self, beat: Heartbeat) -> dict[str, Any]:
        """Take one heartbeat; the answer (the port ids of this host it reported)."""
        since = beat.seen_at - timedelta(seconds=self.agent_down_time)
        reason, answer = self.memory.remember(beat, since)
        self._ensure_flushing()
        if answer is not None:
            return answer
        log.debug("heartbeat of %s written at once: %s", beat.host, reason)
        try:
            answer, applied = await self._write_at_once(beat)
        except NeutronError as error:
            if error.status == 404:
                self.memory.forget(beat.host)
            raise
        self.memory.written(beat, applied, answer)
        return answer

    async def _write_at_once(self, beat: Heartbeat) -> tuple[dict[str, Any], int]:
        """Write ``beat`` in the next transaction of heartbeats (``write_heartbeats``)."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queued.append((beat, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())
        return await future

    async def _write_queued(self) -> None:
        """Write the queued heartbeats, all those queued meanwhile in one transaction,
        until none waits."""
        while self._queued:
            batch, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
            beats = [beat for beat, _ in batch]
            try:
                results = await self.write(lambda tx, beats=beats: write_heartbeats(tx, beats))
            except Exception as error:  # noqa: BLE001 - each waiting request raises it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its request went away
                    continue
                if isinstance(result, NeutronError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def flush(self) -> None:
        """Write every heartbeat memory holds that the database does not (one transaction)."""
        beats = self.memory.unflushed()
        if not beats:
            return
        gone = await self.write(lambda tx: flush_heartbeats(tx, beats))
        self.memory.flushed(beats)
        for host in gone:
            self.memory.forget(host)

    def _ensure_flushing(self) -> None:
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except NeutronError:  # the database is unreachable (logged once): next tick
                continue
            except Exception:  # noqa: BLE001 - a bug must not stop liveness from flushing
                log.exception("flushing heartbeats failed")

    async def close(self) -> None:
        """Stop the timer and write what memory holds (best effort: shutting down)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()
