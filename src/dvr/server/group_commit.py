"""Group commit: requests that each need a small write share a transaction.

An item submitted when no transaction of its kind is being written starts one at once; the
items submitted while one is written go together into the next, at most ``max_group`` in
one (every write of the process, and of every other server process on the database, waits
while one is written).  ``write_batch`` writes a batch as if its items were written one
after the other and answers each in order: its result, or the ``NeutronError`` refusing it
alone.  A batch whose transaction fails raises that error to every request in it.

1,000 agents starting at once then make a few dozen transactions (and as many commits, each
an fsync on PostgreSQL), not 1,000.

Reads group the same way (``ServerContext.read_together``): the watches one write wakes
whose views need the database are built in one read transaction, in one thread, one after
the other, so the second and later find in memory the parts the first read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from dvr.server.errors import NeutronError

Item = TypeVar("Item")
Result = TypeVar("Result")
# (a WriteTx or a ReadTx, the items) -> Result | NeutronError each
Batch = Callable[[Any, list[Item]], list[Any]]
Transaction = Callable[[Callable[[Any], Any]], Awaitable[Any]]  # runs one transaction

MAX_GROUP = 256


class GroupCommit(Generic[Item, Result]):
    def __init__(self, write: Transaction, write_batch: Batch, max_group: int = MAX_GROUP
                 ) -> None:
        """``write``: the context's serialized transaction (``ServerContext.write``), or
        one read transaction (``ServerContext.read``)."""
        self._write = write
        self._write_batch = write_batch
        self._max_group = max_group
        self._queued: list[tuple[Item, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        """Write ``item`` in the next transaction of its kind; its result (or its error)."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())
        return await future

    async def _write_queued(self) -> None:
        while self._queued:
            size = self._max_group
            batch, self._queued = self._queued[:size], self._queued[size:]
            items = [item for item, _ in batch]
            try:
                results = await self._write(
                    lambda tx, items=items: self._write_batch(tx, items))
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
