"""The own-rows ledger answers what asking revision by revision answers: never "kept" when a
write between may have changed the host's rows or is not known (sound), and "kept" whenever
the writes are known in order and none named the host (complete where it matters)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.server.own_rows_ledger import MAX_GAPS, OwnRowsLedger

HOSTS = ("h1", "h2", "h3")
OWN_ROWS = st.none() | st.frozensets(st.sampled_from(HOSTS), max_size=2)


def reference(known: dict[int, frozenset[str] | None], host: str, read_at: int,
              revision: int) -> bool:
    """Revision by revision, with every write remembered."""
    if read_at == revision:
        return True
    if read_at > revision:
        return False
    for between in range(read_at + 1, revision + 1):
        if between not in known:
            return False
        named = known[between]
        if named is None or host in named:
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), OWN_ROWS), max_size=40), st.data())
def test_the_ledger_never_keeps_what_a_known_or_unknown_write_may_have_changed(writes, data):
    ledger = OwnRowsLedger()
    known: dict[int, frozenset[str] | None] = {}
    first = writes[0][0] if writes else 0
    for revision, own_rows in writes:
        ledger.written(revision, own_rows)
        if revision >= first:  # before the first write heard: not tracked, not known
            known.setdefault(revision, own_rows)
    for _ in range(20):
        host = data.draw(st.sampled_from(HOSTS))
        read_at = data.draw(st.integers(0, 32))
        revision = data.draw(st.integers(0, 32))
        if ledger.kept(host, read_at, revision):
            assert reference(known, host, read_at, revision), (host, read_at, revision)


@settings(max_examples=300, deadline=None)
@given(st.lists(OWN_ROWS, min_size=1, max_size=40), st.data())
def test_writes_heard_in_order_keep_every_host_that_none_named_since(writes, data):
    ledger = OwnRowsLedger()
    known = {}
    for revision, own_rows in enumerate(writes, start=1):
        ledger.written(revision, own_rows)
        known[revision] = own_rows
    newest = len(writes)
    host = data.draw(st.sampled_from(HOSTS))
    read_at = data.draw(st.integers(0, newest))
    assert ledger.kept(host, read_at, newest) == reference(known, host, read_at, newest)


def test_thousands_of_revisions_naming_others_keep_a_host():
    """1,000 agents registering: ~2,000 revisions, each naming its own host."""
    ledger = OwnRowsLedger()
    for revision in range(1, 2001):
        ledger.written(revision, frozenset({f"host-{revision % 1000}"}))
    assert ledger.kept("host-7", 1007, 2000)  # named by 7 and 1007, not since
    assert not ledger.kept("host-7", 1006, 2000)
    assert not ledger.kept("host-7", 1500, 2001)  # 2001 is not known yet


def test_a_gap_closes_when_its_revision_arrives_late_and_a_flood_of_gaps_forgets():
    ledger = OwnRowsLedger()
    ledger.written(1, frozenset())
    ledger.written(3, frozenset())  # 2 not heard yet (another process's)
    assert not ledger.kept("h1", 1, 3)
    ledger.written(2, frozenset({"h2"}))
    assert ledger.kept("h1", 1, 3) and not ledger.kept("h2", 1, 3)
    ledger.written(3 + MAX_GAPS + 2, frozenset())  # too many to track one by one
    assert ledger.gaps == set()
    assert not ledger.kept("h1", 3, 3 + MAX_GAPS + 2)
    assert ledger.kept("h1", 3 + MAX_GAPS + 1, 3 + MAX_GAPS + 2)


def test_a_write_for_any_host_invalidates_everyone_read_before_it():
    ledger = OwnRowsLedger()
    for revision, own_rows in ((5, frozenset()), (6, None), (7, frozenset({"h1"}))):
        ledger.written(revision, own_rows)
    assert not ledger.kept("h2", 5, 7)
    assert ledger.kept("h2", 6, 7) and not ledger.kept("h1", 6, 7)
    assert not ledger.kept("h2", 4, 5)  # conservative: 6, after 5, may have changed any
