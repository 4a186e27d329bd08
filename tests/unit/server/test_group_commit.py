"""Group commit (``dvr.server.group_commit``): one transaction for a lone item, the items
submitted while one is written together in the next, at most ``max_group`` in one, each
request answered (or refused) for itself."""

import asyncio

from dvr.server.errors import NotFoundError
from dvr.server.group_commit import GroupCommit


class Database:
    """``write`` as the server's, with each transaction held open until the test lets it
    commit; remembers the items of each one."""

    def __init__(self):
        self.transactions: list[list[str]] = []
        self.commit = asyncio.Event()

    def write_batch(self, tx, items):
        self.transactions.append(list(items))
        return [NotFoundError(f"{i} unknown") if i.startswith("ghost") else i.upper()
                for i in items]

    async def write(self, work):
        await self.commit.wait()
        return work(None)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_long_queue_goes_in_transactions_of_at_most_max_group_in_order():
    async def scenario():
        database = Database()
        group = GroupCommit(database.write, database.write_batch, max_group=2)
        first = asyncio.create_task(group.submit("a"))
        await settle()
        rest = [asyncio.create_task(group.submit(i)) for i in ("b", "c", "ghost", "e", "f")]
        await settle()
        database.commit.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        return database.transactions, results

    transactions, results = asyncio.run(scenario())
    assert transactions == [["a"], ["b", "c"], ["ghost", "e"], ["f"]]
    assert results[:3] == ["A", "B", "C"] and results[4:] == ["E", "F"]
    assert isinstance(results[3], NotFoundError)


def test_a_lone_item_waits_for_nothing():
    async def scenario():
        database = Database()
        database.commit.set()
        group = GroupCommit(database.write, database.write_batch)
        return await group.submit("a"), await group.submit("b"), database.transactions

    assert asyncio.run(scenario()) == ("A", "B", [["a"], ["b"]])
