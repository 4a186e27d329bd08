"""KnownCredentials: which host credentials one server process may trust without reading
them again, and what it keeps for database outages."""

from __future__ import annotations

from dvr.server.known_credentials import KnownCredentials


def test_a_credential_read_is_trusted_only_by_a_process_that_sees_every_write():
    for sees_every_write in (True, False):
        known = KnownCredentials(sees_every_write=sees_every_write)
        assert known.trusted("k1") is None and known.last_read("k1") is None
        known.remember("k1", "compute-1", known.generation)
        assert known.trusted("k1") == ("compute-1" if sees_every_write else None)
        assert known.last_read("k1") == "compute-1"  # for outages, either way


def test_a_token_that_names_nobody_is_not_remembered_and_clears_what_it_named():
    known = KnownCredentials(sees_every_write=True)
    known.remember("k1", None, known.generation)
    assert known.trusted("k1") is None and known.last_read("k1") is None
    known.remember("k1", "compute-1", known.generation)
    known.remember("k1", None, known.generation)  # read again: gone from the database
    assert known.trusted("k1") is None and known.last_read("k1") is None


def test_forgetting_a_host_drops_its_credentials_and_keeps_the_others():
    known = KnownCredentials(sees_every_write=True)
    for key, host in (("k1", "compute-1"), ("k2", "compute-1"), ("k3", "compute-2")):
        known.remember(key, host, known.generation)
    known.forget_host("compute-1")
    assert known.trusted("k1") is None and known.trusted("k2") is None
    assert known.last_read("k1") is None
    assert known.trusted("k3") == "compute-2"
    known.forget_host("network-1")  # no credential of it: nothing else changes
    assert known.trusted("k3") == "compute-2"


def test_a_read_that_began_before_a_forget_does_not_bring_the_old_credential_back():
    known = KnownCredentials(sees_every_write=True)
    began = known.generation
    known.forget_host("compute-1")  # rotated while the read was under way
    known.remember("old", "compute-1", began)
    assert known.trusted("old") is None and known.last_read("old") is None
    known.remember("new", "compute-1", known.generation)  # a read after it counts
    assert known.trusted("new") == "compute-1"


def test_memory_is_bounded_by_dropping_the_oldest_read():
    known = KnownCredentials(sees_every_write=True, limit=3)
    for index in range(5):
        known.remember(f"k{index}", f"host-{index}", known.generation)
    assert [known.trusted(f"k{i}") for i in range(5)] == [None, None, "host-2", "host-3",
                                                         "host-4"]
    known.remember("k2", "host-2", known.generation)  # read again: the newest now
    known.remember("k5", "host-5", known.generation)
    assert known.trusted("k2") == "host-2" and known.trusted("k3") is None


def test_with_postgresql_reads_are_trusted_only_while_every_notice_is_heard():
    known = KnownCredentials(sees_every_write=False)
    known.remember("k1", "compute-1", known.generation)
    assert known.trusted("k1") is None  # no listener yet: read at every request
    known.hearing_from_now()
    assert known.trusted("k1") is None  # read before: a notice may have been missed
    assert known.last_read("k1") == "compute-1"
    known.remember("k1", "compute-1", known.generation)
    assert known.trusted("k1") == "compute-1"
    known.deaf()  # the listener lost its connection
    assert known.trusted("k1") is None and known.last_read("k1") == "compute-1"
    known.remember("k2", "compute-2", known.generation)
    known.hearing_from_now()
    assert known.trusted("k2") is None  # read while deaf: not trusted once heard again


def test_a_read_that_spans_a_change_of_hearing_is_not_trusted():
    known = KnownCredentials(sees_every_write=False)
    began = known.generation
    known.hearing_from_now()
    known.remember("k1", "compute-1", began)
    assert known.trusted("k1") is None and known.last_read("k1") is None
    known.remember("k1", "compute-1", known.generation)
    began = known.generation
    known.deaf()
    known.hearing_from_now()
    known.remember("k2", "compute-2", began)
    assert known.trusted("k2") is None


def test_a_notice_heard_forgets_the_host_on_this_process_too():
    known = KnownCredentials(sees_every_write=False)
    known.hearing_from_now()
    known.remember("k1", "compute-1", known.generation)
    known.remember("k2", "compute-2", known.generation)
    known.forget_host("compute-1")
    assert known.trusted("k1") is None and known.last_read("k1") is None
    assert known.trusted("k2") == "compute-2"
