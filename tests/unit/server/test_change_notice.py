"""Change notices between server processes: the NOTIFY payload (pure) and how a listener
turns notices into hub publishes — in order from the notice, and from the change rows when
a notice skips revisions or could not carry its hosts."""

from __future__ import annotations

import asyncio

import pytest

from dvr.server.change_notice import (
    MAX_PAYLOAD_BYTES,
    ChangeNotice,
    decode_credential_notice,
    decode_notice,
    encode_credential_notice,
    encode_notice,
)
from dvr.server.known_credentials import KnownCredentials
from dvr.server.pg_notify import ChangeListener, libpq_conninfo
from dvr.server.services.notify import ChangedParts, NewChanges
from dvr.server.watch import ChangeHub


def test_a_notice_carries_its_revision_and_hosts():
    payload = encode_notice(7, {"compute-2", "compute-1"})
    assert decode_notice(payload) == ChangeNotice(7, frozenset({"compute-1", "compute-2"}))


def test_hosts_that_do_not_fit_are_left_to_the_change_rows():
    hosts = {f"compute-{i:05d}.example.org" for i in range(1000)}
    payload = encode_notice(9, hosts)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert decode_notice(payload) == ChangeNotice(9, None)


@pytest.mark.parametrize("payload", ["", "nope", "[]", '{"r": 0}', '{"r": true}',
                                     '{"r": "3"}', '{"r": 3, "h": "compute-1"}',
                                     '{"r": 3, "h": [1]}'])
def test_payloads_that_are_not_notices_are_ignored(payload):
    assert decode_notice(payload) is None


def test_conninfo_is_the_libpq_uri_of_the_database_url():
    assert libpq_conninfo("postgresql+psycopg://dvr:s3cret@127.0.0.1:5433/dvr") == (
        "postgresql://dvr:s3cret@127.0.0.1:5433/dvr")


class ChangeRows:
    """What ``read_new_changes`` reads: the newest revision, each host's newest."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str]] = []  # (revision, host)
        self.reads: list[int] = []

    async def __call__(self, since: int) -> NewChanges:
        self.reads.append(since)
        newest: dict[str, int] = {}
        for revision, host in self.rows:
            if revision > since:
                newest[host] = max(newest.get(host, 0), revision)
        return NewChanges(max([since, *(r for r, _ in self.rows)]), newest)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_notices_in_order_are_published_without_reading_the_database():
    async def scenario() -> None:
        rows = ChangeRows()
        hub = ChangeHub(read_new_changes=rows, latest=4)
        listener = ChangeListener("postgresql://x", rows, seen=4)
        h1, h2 = hub.snapshot("h1"), hub.snapshot("h2")
        await listener.receive(encode_notice(5, {"h1"}), hub)
        assert h1.is_set() and not h2.is_set()
        await listener.receive(encode_notice(6, {"h2", "h3"}), hub)
        assert h2.is_set() and hub.latest == 6 and hub.host_revision("h3") == 6
        await listener.receive(encode_notice(6, {"h2"}), hub)  # a duplicate: nothing
        assert rows.reads == [] and listener.seen == 6
    run(scenario())


def test_a_skipped_revision_is_read_from_the_change_rows():
    async def scenario() -> None:
        rows = ChangeRows()
        hub = ChangeHub(read_new_changes=rows, latest=4)
        listener = ChangeListener("postgresql://x", rows, seen=4)
        rows.rows = [(5, "h1"), (6, "h2")]  # 5's notice was lost (the connection dropped)
        h1 = hub.snapshot("h1")
        await listener.receive(encode_notice(6, {"h2"}), hub)
        assert h1.is_set() and rows.reads == [4] and listener.seen == 6
        assert (hub.host_revision("h1"), hub.host_revision("h2")) == (5, 6)
    run(scenario())


def test_a_notice_without_hosts_is_completed_from_the_change_rows():
    async def scenario() -> None:
        rows = ChangeRows()
        hub = ChangeHub(read_new_changes=rows, latest=1)
        listener = ChangeListener("postgresql://x", rows, seen=1)
        rows.rows = [(2, f"h{i}") for i in range(500)]
        events = [hub.snapshot(f"h{i}") for i in range(500)]
        other = hub.snapshot("elsewhere")
        await listener.receive('{"r":2}', hub)
        assert all(e.is_set() for e in events) and not other.is_set()
    run(scenario())


CHANGED = ChangedParts(frozenset({"net-a"}), frozenset({"router-1"}), frozenset({"sg-1"}),
                       False, frozenset({"compute-7"}))


@pytest.mark.parametrize("changed", [
    CHANGED,
    ChangedParts(frozenset(), frozenset(), frozenset(), True, None),  # any host's own rows
])
def test_a_notice_carries_what_the_write_may_have_changed(changed):
    payload = encode_notice(7, {"compute-1"}, changed)
    assert decode_notice(payload) == ChangeNotice(7, frozenset({"compute-1"}), changed)


def test_parts_stay_when_the_hosts_do_not_fit_and_go_when_they_do_not_fit_either():
    hosts = {f"compute-{i:05d}.example.org" for i in range(1000)}
    payload = encode_notice(9, hosts, CHANGED)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert decode_notice(payload) == ChangeNotice(9, None, CHANGED)
    huge = ChangedParts(frozenset(hosts), frozenset(), frozenset(), False, frozenset())
    payload = encode_notice(9, hosts, huge)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert decode_notice(payload) == ChangeNotice(9, None, None)


@pytest.mark.parametrize("parts", ['"x"', "[]", '{"n":[],"r":[],"m":[]}',
                                   '{"n":[1],"r":[],"m":[],"f":false}',
                                   '{"n":[],"r":[],"m":[],"f":"no"}',
                                   '{"n":[],"r":"r1","m":[],"f":false}',
                                   '{"n":[],"r":[],"m":[],"f":false,"o":"h1"}'])
def test_parts_that_are_not_well_formed_are_read_again(parts):
    notice = decode_notice(f'{{"r":3,"h":["h1"],"p":{parts}}}')
    assert notice == ChangeNotice(3, frozenset({"h1"}), None)


def test_the_listener_tells_what_each_write_changed_whatever_path_publishes_it():
    async def scenario() -> None:
        rows = ChangeRows()
        hub = ChangeHub(read_new_changes=rows, latest=4)
        told: list[tuple[int, ChangedParts]] = []
        listener = ChangeListener("postgresql://x", rows, seen=4,
                                  written=lambda r, c: told.append((r, c)))
        await listener.receive(encode_notice(5, {"h1"}, CHANGED), hub)
        rows.rows = [(6, f"h{i}") for i in range(500)]
        await listener.receive(encode_notice(6, {f"h{i}" for i in range(500)}, CHANGED), hub)
        await listener.receive(encode_notice(7, {"h1"}), hub)  # no parts: nothing to tell
        assert told == [(5, CHANGED), (6, CHANGED)]
    run(scenario())


def test_a_notice_carries_its_subjects_when_they_fit_beside_the_hosts():
    subjects = [("port", "p-1"), ("router", "r-1")]
    payload = encode_notice(7, {"compute-1"}, CHANGED, subjects)
    assert decode_notice(payload) == ChangeNotice(7, frozenset({"compute-1"}), CHANGED,
                                                  tuple(subjects))
    many = [("port", f"{i:036d}") for i in range(300)]  # do not fit: hosts and parts stay
    payload = encode_notice(7, {"compute-1"}, CHANGED, many)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert decode_notice(payload) == ChangeNotice(7, frozenset({"compute-1"}), CHANGED)


@pytest.mark.parametrize("subjects", ['"port"', "[]", '[["port"]]', '[["port", 1]]',
                                      '[["port", "p", "x"]]', '[{"kind": "port"}]'])
def test_malformed_subjects_count_as_not_sent(subjects):
    payload = f'{{"r":5,"h":["h1"],"s":{subjects}}}'
    assert decode_notice(payload) == ChangeNotice(5, frozenset({"h1"}))


def test_another_processs_writes_are_known_from_its_notices_or_its_change_rows():
    """A notice with its subjects, or change rows read with theirs, let the hub answer a
    woken watch's changes without the database, as for this process's own writes."""
    async def scenario() -> None:
        rows = ChangeRows()
        hub = ChangeHub(read_new_changes=rows, latest=4, known_from=4)
        listener = ChangeListener("postgresql://x", rows, seen=4)
        await listener.receive(encode_notice(5, {"h1", "h2"}, None, [("port", "p1")]), hub)
        assert hub.changes_known("h1", 4, 1000) == (5, [("port", "p1")])
        await listener.receive(encode_notice(6, {"h1"}), hub)  # no subjects: not known
        assert hub.changes_known("h1", 4, 1000) is None
        assert hub.changes_known("h2", 6, 1000) == (6, [])

        async def with_writes(since: int) -> NewChanges:
            rows.reads.append(since)
            return NewChanges(8, {"h1": 8, "h3": 7}, {
                7: (frozenset({"h3"}), (("network", "n1"),)),
                8: (frozenset({"h1"}), (("port", "p2"), ("port", "p3")))})

        listener.read_new_changes = with_writes
        await listener.receive('{"r":8}', hub)  # too many hosts to carry: rows read
        assert rows.reads == [6] and hub.latest == 8
        assert hub.changes_known("h1", 6, 1000) == (8, [("port", "p2"), ("port", "p3")])
        assert hub.changes_known("h3", 6, 1000) == (8, [("network", "n1")])
        assert hub.changes_known("h1", 5, 1000) is None  # revision 6 is not remembered
    run(scenario())


def test_a_credential_notice_names_its_host_and_is_no_change_notice():
    payload = encode_credential_notice("compute-1")
    assert decode_credential_notice(payload) == "compute-1"
    assert decode_notice(payload) is None
    for other in (encode_notice(5, {"h1"}), "", "[]", '{"c": 5}', '{"c": "h", "r": 3}'):
        assert decode_credential_notice(other) is None


def test_the_listener_forgets_a_credential_it_hears_of_and_publishes_nothing():
    async def scenario() -> None:
        rows = ChangeRows()
        hub = ChangeHub(read_new_changes=rows, latest=4)
        known = KnownCredentials()
        listener = ChangeListener("postgresql://x", rows, seen=4, credentials=known)
        known.hearing_from_now()  # as follow() does once it listens
        known.remember("k1", "compute-1", known.generation)
        h1 = hub.snapshot("compute-1")
        await listener.receive(encode_credential_notice("compute-1"), hub)
        assert known.trusted("k1") is None and known.last_read("k1") is None
        assert not h1.is_set() and hub.latest == 4 and rows.reads == [] and listener.seen == 4
    run(scenario())
