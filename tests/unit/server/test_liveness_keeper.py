"""Heartbeats that must be written at once go in a group commit: one transaction when
alone, together with those that came while one was being written, each answer (or
error) to its own request."""

import asyncio
from datetime import datetime

import pytest

import dvr.server.liveness_keeper as keeper_module
from dvr.server.errors import NotFoundError, ServiceUnavailable
from dvr.server.liveness import AgentReport, Heartbeat, LivenessMemory, freeze_dataplane
from dvr.server.liveness_keeper import LivenessKeeper

T0 = datetime(2026, 1, 1, 12, 0, 0)


def beat(host: str) -> Heartbeat:
    report = AgentReport(frozenset(), frozenset(), freeze_dataplane({"vifs": {},
                                                                     "local_vlans": {}}))
    return Heartbeat(host, T0, 7, report)


class Database:
    """``write`` as the server's: runs the work, here with each transaction held open
    until the test lets it commit; remembers the hosts each one wrote."""

    def __init__(self, unknown=(), fails=None):
        self.transactions: list[list[str]] = []
        self.unknown = set(unknown)
        self.fails = fails
        self.commit = asyncio.Event()

    def write_heartbeats(self, tx, beats):
        self.transactions.append([b.host for b in beats])
        return [NotFoundError(f"{b.host} unknown") if b.host in self.unknown
                else ({"host": b.host, "alive": True}, b.applied_revision) for b in beats]

    async def write(self, work):
        await self.commit.wait()
        if self.fails is not None:
            raise self.fails
        return work(None)


def keeper_on(database, monkeypatch) -> LivenessKeeper:
    monkeypatch.setattr(keeper_module, "write_heartbeats", database.write_heartbeats)
    return LivenessKeeper(LivenessMemory(), database.write, interval=3600, agent_down_time=75)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def queued_behind_one(keeper, *hosts):
    """compute-1's heartbeat, in a transaction held open, then those of ``hosts`` (queued
    while it is written): their tasks."""
    first = asyncio.create_task(keeper.receive(beat("compute-1")))
    await settle()
    queued = [asyncio.create_task(keeper.receive(beat(host))) for host in hosts]
    await settle()
    return first, queued


def test_a_lone_heartbeat_is_written_in_a_transaction_of_its_own(monkeypatch):
    async def scenario():
        database = Database()
        keeper = keeper_on(database, monkeypatch)
        database.commit.set()
        answer = await keeper.receive(beat("compute-1"))
        await keeper.close()
        return database.transactions, answer

    transactions, answer = asyncio.run(scenario())
    assert transactions[0] == ["compute-1"] and answer == {"host": "compute-1", "alive": True}


def test_heartbeats_that_come_while_one_is_written_share_the_next_transaction(monkeypatch):
    async def scenario():
        database = Database()
        keeper = keeper_on(database, monkeypatch)
        first, rest = await queued_behind_one(keeper, "compute-2", "compute-3", "compute-4")
        database.commit.set()
        answers = await asyncio.gather(first, *rest)
        # memory knows them all now: the next heartbeats of these hosts write nothing
        again = await asyncio.gather(*(keeper.receive(beat(f"compute-{i}")) for i in (1, 2)))
        return database.transactions, answers, again

    transactions, answers, again = asyncio.run(scenario())
    assert transactions == [["compute-1"], ["compute-2", "compute-3", "compute-4"]]
    assert [a["host"] for a in answers] == ["compute-1", "compute-2", "compute-3", "compute-4"]
    assert [a["host"] for a in again] == ["compute-1", "compute-2"]


def test_a_refused_heartbeat_fails_alone_and_is_forgotten(monkeypatch):
    async def scenario():
        database = Database(unknown={"ghost"})
        keeper = keeper_on(database, monkeypatch)
        first, (ghost, other) = await queued_behind_one(keeper, "ghost", "compute-2")
        database.commit.set()
        results = await asyncio.gather(first, ghost, other, return_exceptions=True)
        return keeper, results

    keeper, (first, ghost, other) = asyncio.run(scenario())
    assert isinstance(ghost, NotFoundError)
    assert first["host"] == "compute-1" and other["host"] == "compute-2"
    assert keeper.memory.last_seen("ghost", datetime(2000, 1, 1)) == datetime(2000, 1, 1)
    assert keeper.memory.last_seen("compute-2", datetime(2000, 1, 1)) == T0


def test_a_failed_transaction_fails_every_heartbeat_in_it_and_the_next_ones_go_on(monkeypatch):
    async def scenario():
        database = Database(fails=ServiceUnavailable("database unreachable", retry_after=2))
        keeper = keeper_on(database, monkeypatch)
        waiting = [asyncio.create_task(keeper.receive(beat(f"compute-{i}"))) for i in (1, 2)]
        await settle()
        database.commit.set()
        failed = await asyncio.gather(*waiting, return_exceptions=True)
        database.fails = None
        later = await keeper.receive(beat("compute-1"))
        return failed, later

    failed, later = asyncio.run(scenario())
    assert all(isinstance(f, ServiceUnavailable) for f in failed)
    assert later["host"] == "compute-1"  # written: memory had not taken the failed one


def test_a_request_that_went_away_does_not_stop_the_others(monkeypatch):
    async def scenario():
        database = Database()
        keeper = keeper_on(database, monkeypatch)
        first, (gone, stays) = await queued_behind_one(keeper, "compute-2", "compute-3")
        gone.cancel()
        database.commit.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    assert asyncio.run(scenario())["host"] == "compute-3"
