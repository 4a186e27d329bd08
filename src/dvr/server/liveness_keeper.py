"""Receives heartbeats: written at once when they say something new, kept in memory and
flushed in one batch every ``interval`` seconds otherwise (``dvr.server.liveness``).

"At once" is a group commit (``dvr.server.group_commit``): the heartbeats that come while
one transaction of them is written go together into the next.  A lone heartbeat waits for
nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from dvr.server.errors import NeutronError
from dvr.server.group_commit import GroupCommit
from dvr.server.liveness import Heartbeat, LivenessMemory
from dvr.server.services.heartbeats import flush_heartbeats, write_heartbeats
from dvr.server.tx import WriteTx

log = logging.getLogger("dvr.server.liveness")
T = TypeVar("T")
Write = Callable[[Callable[[WriteTx], T]], Awaitable[T]]


@dataclass
class LivenessKeeper:
    memory: LivenessMemory
    write: Write  # ServerContext.write: one serialized transaction, changes published
    interval: float
    agent_down_time: int
    _task: asyncio.Task | None = None
    _closed: bool = False
    _group: GroupCommit[Heartbeat, tuple[dict[str, Any], int]] = field(init=False)

    def __post_init__(self) -> None:
        # the module's write_heartbeats when the batch is written (tests replace it)
        self._group = GroupCommit(self.write, lambda tx, beats: write_heartbeats(tx, beats))

    async def receive(self, beat: Heartbeat) -> dict[str, Any]:
        """Take one heartbeat; the answer (the port ids of this host it reported)."""
        since = beat.seen_at - timedelta(seconds=self.agent_down_time)
        reason, answer = self.memory.remember(beat, since)
        self._ensure_flushing()
        if answer is not None:
            return answer
        log.debug("heartbeat of %s written at once: %s", beat.host, reason)
        try:
            answer, applied = await self._group.submit(beat)
        except NeutronError as error:
            if error.status == 404:
                self.memory.forget(beat.host)
            raise
        self.memory.written(beat, applied, answer)
        return answer

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
