"""What the change hub can tell without the database: that nothing after a revision
concerns a host, as far as it heard every revision since it started (``nothing_new``)."""

from __future__ import annotations

from dvr.server.services.notify import NewChanges
from dvr.server.watch import MAX_HEARD_AHEAD, ChangeHub


async def _never(since: int) -> NewChanges:
    raise AssertionError("the hub read the database")


def hub(start: int | None = 10) -> ChangeHub:
    return ChangeHub(read_new_changes=_never, latest=start or 0, known_from=start)


def test_a_hub_that_knows_nothing_cannot_tell():
    assert hub(None).nothing_new("h1", 10) is None


def test_revisions_published_in_order_are_known_with_their_hosts():
    h = hub()
    assert h.nothing_new("h1", 10) == 10
    h.publish(11, {"h1"})
    h.publish(12, {"h2"})
    assert h.nothing_new("h1", 11) == 12  # only h2 changed after 11
    assert h.nothing_new("h1", 10) is None  # 11 concerns h1
    assert h.nothing_new("h3", 10) == 12


def test_a_revision_before_the_start_or_past_what_was_heard_is_not_known():
    h = hub()
    h.publish(11, {"h1"})
    assert h.nothing_new("h2", 9) is None  # before the start: the database knows
    assert h.nothing_new("h2", 12) is None  # another process's revision, not heard yet


def test_a_gap_holds_back_what_is_known_until_it_is_published():
    h = hub()
    h.publish(12, {"h2"})  # 11 committed first, published later
    assert h.nothing_new("h1", 12) is None
    assert h.nothing_new("h1", 10) == 10
    h.publish(11, {"h1"})
    assert h.nothing_new("h3", 12) == 12
    assert h.nothing_new("h1", 10) is None


def test_a_range_read_from_the_change_rows_is_heard_at_once():
    h = hub()
    h.publish_each(15, {"h1": 13}, since=10)
    assert h.nothing_new("h2", 11) == 15
    assert h.nothing_new("h1", 12) is None
    assert h.nothing_new("h1", 13) == 15


def test_possibly_everyone_starts_what_is_known_again():
    h = hub()
    h.publish(11, {"h1"})
    h.publish_each(20, None, since=11)  # the change rows were pruned: hosts unknown
    assert h.nothing_new("h2", 19) is None
    assert h.nothing_new("h2", 20) == 20
    h.publish(21, {"h1"})
    assert h.nothing_new("h2", 20) == 21


def test_a_gap_that_never_closes_is_given_up_past_the_bound():
    h = hub()
    for revision in range(12, 12 + MAX_HEARD_AHEAD + 1):  # 11 is never published
        h.publish(revision, {"h2"})
    newest = 11 + MAX_HEARD_AHEAD + 1
    assert h.nothing_new("h1", newest) == newest  # known again, past the gap
    assert h.nothing_new("h1", 10) is None
