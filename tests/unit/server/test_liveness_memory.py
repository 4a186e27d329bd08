"""Heartbeats in memory: which ones must reach the database at once, and what liveness reads
(memory over the database)."""

from datetime import datetime, timedelta

from dvr.server.liveness import (
    AgentReport,
    Heartbeat,
    LivenessMemory,
    freeze_dataplane,
    write_reason,
)

T0 = datetime(2026, 1, 1, 12, 0, 0)
LONG_AGO = T0 - timedelta(hours=1)
DATAPLANE = {"vifs": {"p1": "tap1"}, "local_vlans": {"n1": 1}}


def beat(at: datetime, up=("p1",), down=(), dataplane=DATAPLANE, applied=None) -> Heartbeat:
    report = AgentReport(frozenset(up), frozenset(down), freeze_dataplane(dataplane))
    return Heartbeat("compute-1", at, applied, report)


def written_memory(first: Heartbeat, applied: int = 3) -> LivenessMemory:
    memory = LivenessMemory()
    memory.written(first, applied, {"host": "compute-1", "ports_up": ["p1"]})
    return memory


def test_what_must_be_written_at_once():
    first = beat(T0)
    alive_since = T0 - timedelta(seconds=75)
    assert write_reason(None, first, alive_since) == "first heartbeat in this process"
    memory = written_memory(first)
    entry = memory._hosts["compute-1"]
    same = beat(T0 + timedelta(seconds=10), applied=9)
    assert write_reason(entry, same, alive_since) is None
    # the periodic heartbeat names no down ports and may carry no dataplane facts
    assert write_reason(entry, beat(T0, dataplane=None), alive_since) is None
    assert write_reason(entry, beat(T0, up=(), down=("p1",)), alive_since) == (
        "port status changed"
    )
    assert write_reason(entry, beat(T0, up=("p1", "p2")), alive_since) == "port status changed"
    moved = {"vifs": {"p1": "tap9"}, "local_vlans": {"n1": 1}}
    assert write_reason(entry, beat(T0, dataplane=moved), alive_since) == (
        "dataplane report changed"
    )
    later = T0 + timedelta(seconds=200)
    assert write_reason(entry, beat(later), later - timedelta(seconds=75)) == "agent back to life"


def test_memory_answers_and_is_newer_than_the_database():
    memory = written_memory(beat(T0), applied=3)
    reason, answer = memory.remember(beat(T0 + timedelta(seconds=10), applied=9), T0)
    assert (reason, answer) == (None, {"host": "compute-1", "ports_up": ["p1"]})
    # a heartbeat that must be written leaves memory as it was
    assert memory.remember(beat(T0 + timedelta(seconds=11), up=("p9",), applied=10), T0) == (
        "port status changed", None)
    seen = T0 + timedelta(seconds=10)
    assert memory.last_seen("compute-1", T0) == seen
    newer = seen + timedelta(seconds=1)
    assert memory.last_seen("compute-1", newer) == newer
    assert memory.last_seen("compute-9", LONG_AGO) == LONG_AGO  # unknown: the database's
    assert memory.newest_applied("compute-1", 1, T0) == 9
    # another server process wrote a newer heartbeat: its applied revision wins
    assert memory.newest_applied("compute-1", 1, seen + timedelta(seconds=5)) == 1
    assert memory.alive_hosts(T0) == {"compute-1"}
    assert memory.alive_hosts(newer) == set()
    assert memory.newer_applied({"compute-1": (3, T0)}) == {"compute-1": 9}


def test_the_flush_takes_each_host_once_until_it_is_seen_again():
    memory = written_memory(beat(T0, up=("p1",), down=("p2",)))
    assert memory.unflushed() == []  # just written
    memory.remember(beat(T0 + timedelta(seconds=10), up=("p1",), down=()), T0)
    [pending] = memory.unflushed()
    assert (pending.host, pending.seen_at) == ("compute-1", T0 + timedelta(seconds=10))
    assert pending.claims == {"p1": "ACTIVE", "p2": "DOWN"}  # re-asserted by the flush
    memory.flushed([pending])
    assert memory.unflushed() == []
    memory.forget("compute-1")
    assert write_reason(None, beat(T0), T0) == "first heartbeat in this process"
    assert memory.remember(beat(T0), T0) == ("first heartbeat in this process", None)
