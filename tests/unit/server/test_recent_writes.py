"""The change rows of a process's newest writes, in memory: a host's changes after a
revision are exactly the rows the database would give (``notify.changes_for_host``), or
nothing is claimed."""

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.server.recent_writes import RecentWrites
from dvr.server.services.notify import NewChanges
from dvr.server.watch import ChangeHub

HOSTS = ["h1", "h2", "h3", "h4"]
SUBJECTS = [("port", "p1"), ("port", "p2"), ("network", "n1"), ("router", "r1")]


def database_rows(history, retained):
    """What the database holds: a row per (host, subject) of each revision, the oldest
    rows pruned down to ``retained`` (as ``notify.prune_changes``), and the newest
    revision whose rows were dropped."""
    rows = [(rev, host, subject) for rev, hosts, subjects, _ in history
            for host in sorted(hosts) for subject in subjects]
    dropped = rows[:max(0, len(rows) - retained)]
    return rows[len(dropped):], max((r for r, _, _ in dropped), default=0)


def database_changes(history, retained, host, since):
    """``watch_result``'s changes from those rows: None where it answers "resync"."""
    rows, pruned = database_rows(history, retained)
    if since < pruned:
        return None
    seen = {}
    for rev, h, subject in rows:
        if h == host and rev > since:
            seen.setdefault(subject, None)
    return list(seen)


writes = st.lists(
    st.tuples(st.sets(st.sampled_from(HOSTS), min_size=1),
              st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=3, unique=True),
              st.booleans()),  # remembered here (this process's write) or not
    min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(writes, st.integers(2, 60), st.integers(3, 64), st.data())
def test_what_memory_claims_is_what_the_database_holds(writes, retained, window, data):
    memory = RecentWrites(window=window)
    history = []
    for revision, (hosts, subjects, ours) in enumerate(writes, start=1):
        history.append((revision, hosts, subjects, ours))
        if ours:
            memory.wrote(revision, hosts, subjects)
    newest = len(history)
    claimed = 0
    for host in HOSTS:
        for since in range(0, newest + 2):
            known = memory.changes_for(host, since, newest, retained)
            if known is None:
                continue
            claimed += 1
            assert known == database_changes(history, retained, host, since), (host, since)
    # everything after the last write of another process, within the window and the
    # retained rows, is claimed
    last_other = max((r for r, _, _, ours in history if not ours), default=0)
    since = max(last_other, newest - window)
    rows_after = sum(len(h) * len(s) for r, h, s, _ in history if r > since)
    if rows_after <= retained:
        assert memory.changes_for("h1", since, newest, retained) is not None


def test_a_write_not_remembered_between_is_not_claimed():
    memory = RecentWrites()
    memory.wrote(1, ["h1"], [("port", "p1")])
    memory.wrote(3, ["h1"], [("port", "p2")])  # revision 2: another process's
    assert memory.changes_for("h1", 0, 1, 100) == [("port", "p1")]
    assert memory.changes_for("h1", 0, 3, 100) is None
    assert memory.changes_for("h1", 2, 3, 100) == [("port", "p2")]
    assert memory.changes_for("h2", 2, 3, 100) == []
    assert memory.changes_for("h1", 4, 3, 100) is None  # a revision from the future


def test_only_the_window_is_remembered():
    memory = RecentWrites(window=3)
    for revision in range(1, 6):
        memory.wrote(revision, ["h1"], [("port", f"p{revision}")])
    assert memory.changes_for("h1", 2, 5, 100) == [("port", "p3"), ("port", "p4"),
                                                   ("port", "p5")]
    assert memory.changes_for("h1", 1, 5, 100) is None


def test_more_rows_than_the_database_retains_are_not_claimed():
    memory = RecentWrites()
    memory.wrote(1, HOSTS, SUBJECTS)  # 16 rows
    assert memory.changes_for("h1", 0, 1, 16) == SUBJECTS
    assert memory.changes_for("h1", 0, 1, 15) is None


def hub():
    async def nothing(since):
        return NewChanges(since, {})

    return ChangeHub(read_new_changes=nothing, latest=0, known_from=0)


def test_the_hub_claims_what_its_own_writes_published():
    h = hub()
    h.publish(1, ["h1", "h2"], [("port", "p1")])
    h.publish(2, ["h2"], [("network", "n1"), ("port", "p1")])
    assert h.changes_known("h1", 0, 100) == (2, [("port", "p1")])
    assert h.changes_known("h2", 1, 100) == (2, [("network", "n1"), ("port", "p1")])
    assert h.changes_known("h3", 0, 100) == (2, [])


@pytest.mark.parametrize("other", ["without subjects", "several at once", "everyone"])
def test_the_hub_claims_nothing_across_a_write_it_did_not_see_whole(other):
    h = hub()
    h.publish(1, ["h1"], [("port", "p1")])
    if other == "without subjects":  # another process's notice
        h.publish(2, ["h1"])
    elif other == "several at once":  # the poller found revisions 2 and 3
        h.publish_each(3, {"h1": 3}, since=1)
    else:
        h.publish(2, None)
    assert h.changes_known("h1", 0, 100) is None
    assert h.changes_known("h1", 1, 100) is None


def test_the_hub_claims_nothing_while_a_revision_is_missing():
    h = hub()
    h.publish(1, ["h1"], [("port", "p1")])
    h.publish_each(3, {"h1": 3}, since=2)  # revision 2 not heard yet
    assert h.changes_known("h1", 0, 100) is None
    h.publish(2, ["h2"], [("port", "p2")])  # heard: but 3 came without subjects
    assert h.changes_known("h1", 0, 100) is None
    asyncio.run(h.close())


def test_random_publishes_never_claim_a_wrong_answer():
    rng = random.Random(5)
    h = hub()
    history = []
    for revision in range(1, 200):
        hosts = set(rng.sample(HOSTS, rng.randint(1, 4)))
        subjects = rng.sample(SUBJECTS, rng.randint(1, 3))
        ours = rng.random() < 0.8
        history.append((revision, hosts, subjects, ours))
        h.publish(revision, hosts, subjects if ours else None)
        for host in HOSTS:
            since = rng.randint(max(0, revision - 10), revision)
            known = h.changes_known(host, since, 10_000)
            if known is not None:
                assert known == (revision, database_changes(history, 10_000, host, since))
