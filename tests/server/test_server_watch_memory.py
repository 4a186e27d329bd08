"""A woken watch answered from memory: the changes the hub remembers of this process's
writes and the view update built from the revision's kept parts, without a transaction;
the same answer as the database's, and agents following it hold exactly the views built
alone."""

import random
import threading
import time

import pytest
from test_server_notifications import HOSTS, World

from dvr.model.hostview import HostView, host_view_from_dict
from dvr.model.hostview_delta import apply, delta_from_dict
from dvr.server.api import dvr_protocol
from dvr.server.hostview import build_host_view
from dvr.server.memory_only import (
    MEMORY_ONLY,
    MEMORY_ONLY_NOW,
    NeedsDatabase,
    PartsBusy,
    parts_locked,
)


def alone(api, host) -> HostView:
    return api.context.run_read(lambda tx: build_host_view(tx.conn, host))


def watch(api, host, since, view_since):
    return api.call("GET", f"/dvr/v1/hosts/{host}/watch", expect=200, since=since, timeout=0,
                    view_since=view_since)


def span_with_agents(api, hosts, also=None):
    """Network "span" with a port on each of ``hosts`` (and what ``also(number, host)``
    adds), every host registered and holding its first view: (the network, the revision
    each has seen, the view each holds)."""
    net = api.network("span", port_security_enabled=False)
    api.subnet(net["id"], "198.51.100.0/24")
    for number, host in enumerate(hosts, start=1):
        api.register(host, "dvr", f"192.0.2.{number}")
        api.host_mac(host)
        api.port(net["id"], host=host)
        if also is not None:
            also(number, host)
    seen: dict[str, int] = {}
    held: dict[str, HostView] = {}
    for host in hosts:  # every agent's first view
        answer = watch(api, host, 0, 0)
        seen[host] = answer["revision"]
        held[host] = host_view_from_dict({k: v for k, v in answer["view"].items() if k != "full"})
    return net, seen, held


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_agents_woken_from_memory_hold_exactly_the_views_built_alone(api, seed, monkeypatch):
    """Every host watches like an agent after each write (``view_since``: the view it
    holds); the answer's changes are the database's and came from memory (every write is
    this process's), and its view update rebuilds the view built alone (from memory when
    it holds all the view is made of, which these writes, each naming the hosts it
    concerns, seldom leave: ``test_a_port_on_a_network_of_many_hosts...``)."""
    from_memory = {"answers": 0, "views": 0}
    with_changes = 0
    remembered = dvr_protocol.watch_result_from_memory

    def counting(context, host, view_since, known, memory=MEMORY_ONLY):
        result = remembered(context, host, view_since, known, memory)
        from_memory["views"] += "view" in result
        return result

    monkeypatch.setattr(dvr_protocol, "watch_result_from_memory", counting)
    changes_known = api.context.hub.changes_known

    def counting_known(host, since, retained):
        known = changes_known(host, since, retained)
        from_memory["answers"] += known is not None and bool(known[1])
        return known

    monkeypatch.setattr(api.context.hub, "changes_known", counting_known)
    rng = random.Random(seed)
    world = World(api, rng)
    for number, host in enumerate(HOSTS, start=1):  # every agent has started
        api.register(host, "dvr_snat" if host == "snat" else "dvr", f"192.0.2.{number}")
        api.host_mac(host)
        world.registered.add(host)
    held: dict[str, HostView] = {}
    seen: dict[str, int] = {}
    for step in range(60):
        op = rng.choice(world.ops())
        op()
        for host in HOSTS:
            since = seen.get(host, 0)
            answer = watch(api, host, since, held[host].revision if host in held else 0)
            expected = api.context.run_read(
                lambda tx, h=host, s=since: dvr_protocol.watch_result(tx, h, s))
            assert (answer["revision"], answer["changes"], answer["resync"]) == (
                expected["revision"], expected["changes"], expected["resync"]), step
            seen[host] = answer["revision"]
            with_changes += bool(answer["changes"])
            update = answer.get("view")
            if update is None:
                continue
            if update.pop("full"):
                held[host] = host_view_from_dict(update)
            else:
                held[host] = apply(held[host], delta_from_dict(update))
            assert held[host] == alone(api, host), f"step {step} {op.__name__} host {host}"
    assert with_changes >= 20 and from_memory["answers"] == with_changes

def test_a_view_needing_a_row_memory_lacks_is_built_from_the_database(api):
    """Nothing built yet: memory holds no part, so the view needs the database."""
    api.register("h1", "dvr", "192.0.2.1")
    net = api.network("blue", port_security_enabled=False)
    api.subnet(net["id"], "198.51.100.0/24")
    api.port(net["id"], host="h1")
    revision = api.context.hub.latest
    tx = dvr_protocol.ReadTx(conn=MEMORY_ONLY, config=api.context.config)
    with pytest.raises(NeedsDatabase):
        dvr_protocol.view_answer(api.context, tx, "h1", 0, revision)
    answer = watch(api, "h1", 0, 0)  # answered all the same, from the database
    assert answer["changes"] and host_view_from_dict(
        {k: v for k, v in answer["view"].items() if k != "full"}) == alone(api, "h1")


def test_a_port_on_a_network_of_many_hosts_wakes_them_with_views_from_memory(api, monkeypatch):
    """The big fan-out: a port on a network every host is on changes the view of every
    other host, none of whose own rows; the first woken view reads the changed network,
    the others are built from memory, and all are the views built alone."""
    hosts = [f"h{i}" for i in range(1, 7)]
    net, seen, held = span_with_agents(api, hosts)
    built = {"memory": 0, "database": 0}
    remembered, read = dvr_protocol.watch_result_from_memory, dvr_protocol.watch_result

    def from_memory(context, host, view_since, known, memory=MEMORY_ONLY):
        result = remembered(context, host, view_since, known, memory)
        built["memory"] += 1
        return result

    def from_database(tx, host, since, view=None):
        built["database"] += view is not None
        return read(tx, host, since, view)

    monkeypatch.setattr(dvr_protocol, "watch_result_from_memory", from_memory)
    monkeypatch.setattr(dvr_protocol, "watch_result", from_database)
    for round_ in range(3):
        built.update(memory=0, database=0)
        api.port(net["id"], host="h1")
        for host in hosts[1:]:
            answer = watch(api, host, seen[host], held[host].revision)
            seen[host] = answer["revision"]
            assert answer["changes"] and not answer["view"].pop("full")
            held[host] = apply(held[host], delta_from_dict(answer["view"]))
            assert held[host] == alone(api, host), (round_, host)
        assert built == {"memory": len(hosts) - 2, "database": 1}



def test_a_watch_that_began_before_this_processs_writes_is_woken_from_memory(db_url,
                                                                             monkeypatch):
    """A watch from a revision older than this process (its agent started before) reads
    the database once, finds nothing, and long-polls; woken by a write of this process, it
    takes the changes after what it read from memory."""
    import threading

    from server_helpers import Api, make_config
    from starlette.testclient import TestClient

    from dvr.db.session import Database
    from dvr.server.app import create_app

    database = Database.from_url(db_url)
    try:
        before = create_app(make_config(db_url), database, migrate=False)
        with TestClient(before) as client:  # the writes of an earlier process
            api = Api(client, before.state.context)
            net = api.network("span", port_security_enabled=False)
            api.subnet(net["id"], "198.51.100.0/24")
            for number, host in enumerate(["h1", "h2"], start=1):
                api.register(host, "dvr", f"192.0.2.{number}")
                api.port(net["id"], host=host)
            h2_since = before.state.context.hub.host_revision("h2")
            other = api.network("other", port_security_enabled=False)  # not h2's
            api.subnet(other["id"], "203.0.113.0/24")
            api.port(other["id"], host="h1")
            assert before.state.context.hub.latest > h2_since
        app = create_app(make_config(db_url), database, migrate=False)
        asked: list[tuple[int, bool]] = []  # (since, answered) of each memory lookup
        changes_known = app.state.context.hub.changes_known

        def recording(host, since, retained):
            known = changes_known(host, since, retained)
            if host == "h2":
                asked.append((since, known is not None))
            return known

        monkeypatch.setattr(app.state.context.hub, "changes_known", recording)
        with TestClient(app) as client:
            api = Api(client, app.state.context)
            started = app.state.context.hub.latest
            answers: list = []
            watch = threading.Thread(target=lambda: answers.append(api.call(
                "GET", "/dvr/v1/hosts/h2/watch", expect=200, since=h2_since, timeout=10)))
            watch.start()
            threading.Event().wait(1.0)  # its first read is done: it long-polls
            api.port(net["id"], host="h1")
            watch.join(15)
            assert answers and answers[0]["changes"] and answers[0]["revision"] == started + 1
        assert asked == [(h2_since, False), (started, True)]
    finally:
        database.dispose()


def test_on_the_event_loop_a_busy_lock_is_not_waited_for():
    lock = threading.Lock()
    with parts_locked(lock, MEMORY_ONLY_NOW):
        assert lock.locked()
    assert not lock.locked()
    holder = threading.Thread(target=lambda: (lock.acquire(), time.sleep(0.3), lock.release()))
    holder.start()
    time.sleep(0.05)
    with pytest.raises(PartsBusy):
        with parts_locked(lock, MEMORY_ONLY_NOW):
            pass
    with parts_locked(lock, MEMORY_ONLY):  # a thread's build waits its turn
        assert lock.locked()
    holder.join()


def test_a_woken_watch_whose_parts_a_thread_holds_is_answered_once_they_are_free(api):
    """A view built in a thread holds the revision's parts while it reads the database: a
    watch woken meanwhile does not build on the event loop (which would wait for it, and
    stop every other request), but in a thread of its own, once the lock is free; its
    answer is the view built alone."""
    net, seen, held = span_with_agents(api, ["h1", "h2", "h3"])
    api.port(net["id"], host="h1")
    watch(api, "h2", seen["h2"], held["h2"].revision)  # the revision's parts exist
    parts = api.context.view_parts.newest
    parts.lock.acquire()
    threading.Timer(0.3, parts.lock.release).start()
    started = time.monotonic()
    view = held["h3"]
    answer = watch(api, "h3", seen["h3"], view.revision)
    assert time.monotonic() - started >= 0.25  # it waited for the lock, in a thread
    assert answer["changes"] and not answer["view"].pop("full")
    assert apply(view, delta_from_dict(answer["view"])) == alone(api, "h3")


def test_a_write_waking_many_hosts_reads_their_groups_ahead_once_many_miss(api, monkeypatch):
    """The views of the revision before held few groups (its write woke one host): a write
    that wakes every host finds the groups of the others missing.  After
    ``READ_AHEAD_AFTER_MISSES`` views read theirs, the groups and address sets earlier
    revisions held are read at once, and the other views come from memory; every view is
    the view built alone."""
    from dvr.server import hostview_firewall, hostview_parts

    monkeypatch.setattr(hostview_parts, "READ_AHEAD_AFTER_MISSES", 3)
    hosts = [f"h{i}" for i in range(1, 11)]
    tenant = api.network("tenant")
    api.subnet(tenant["id"], "203.0.113.0/24")
    solo = api.network("solo", port_security_enabled=False)
    api.subnet(solo["id"], "198.18.0.0/24")

    def grouped_port(number, host):
        group = api.create("security_group", name=f"g{number}")
        api.create("security_group_rule", security_group_id=group["id"], direction="ingress",
                   ethertype="IPv4", remote_group_id=group["id"])
        api.port(tenant["id"], host=host, security_groups=[group["id"]])

    span, seen, held = span_with_agents(api, hosts, grouped_port)

    def follow(host):
        answer = watch(api, host, seen[host], held[host].revision)
        seen[host] = answer["revision"]
        update = answer.get("view")
        if update is not None:
            held[host] = host_view_from_dict(update) if update.pop("full") \
                else apply(held[host], delta_from_dict(update))

    api.port(solo["id"], host="h1")  # wakes h1 alone: its revision's views hold one group
    follow("h1")
    reads = []
    read_groups = hostview_firewall._group_views

    def counting(conn, group_ids):
        reads.append(len(group_ids))
        return read_groups(conn, group_ids)

    monkeypatch.setattr(hostview_firewall, "_group_views", counting)
    api.port(span["id"], host="h1")  # every other host's view changes
    for host in hosts[1:]:
        follow(host)
    monkeypatch.setattr(hostview_firewall, "_group_views", read_groups)
    assert reads[:2] == [1, 1] and reads[2] > 1 and len(reads) == 3  # the third took the rest
    follow("h1")
    for host in hosts:
        assert held[host] == alone(api, host), host


def test_reads_submitted_together_share_one_transaction(api):
    """The watches one write wakes whose views need the database submit their reads at
    once: they run in one transaction, one after the other, each answered with its own
    result, or its own error."""
    import asyncio

    from dvr.server.errors import NeutronError, conflict
    from dvr.server.services.notify import current_revision

    context = api.context
    revision = context.run_read(lambda tx: current_revision(tx.conn))
    seen = []  # the transaction each read ran in

    def revision_read(tx):
        seen.append(tx)
        return current_revision(tx.conn)

    def refused(tx):
        seen.append(tx)
        raise conflict("Conflict", "this one alone")

    def third(tx):
        seen.append(tx)
        return "third"

    async def together():
        return await asyncio.gather(context.read_together(revision_read),
                                    context.read_together(refused),
                                    context.read_together(third), return_exceptions=True)

    first, error, last = asyncio.run(together())
    assert (first, last) == (revision, "third")
    assert isinstance(error, NeutronError) and error.status == 409
    assert len(seen) == 3 and all(tx is seen[0] for tx in seen)
    assert asyncio.run(together())[0] == revision and seen[3] is not seen[0]


def test_another_processs_write_wakes_a_watch_answered_from_memory(db_url, monkeypatch):
    """Two server processes on one database: a port written through one wakes a watch held
    by the other, which knows that write's change rows (from its notice on PostgreSQL, from
    the rows its poller read on SQLite) and answers the changes without reading them."""
    from server_helpers import Api, make_config
    from starlette.testclient import TestClient

    from dvr.db.session import Database
    from dvr.server.app import create_app
    from dvr.server.services.notify import new_changes

    database = Database.from_url(db_url)
    try:
        writer_app = create_app(make_config(db_url), database, migrate=False)
        watcher_app = create_app(make_config(db_url), database, migrate=False)
        with TestClient(writer_app) as w, TestClient(watcher_app) as v:
            writer, watcher = Api(w, writer_app.state.context), Api(v, watcher_app.state.context)
            net = writer.network("span", port_security_enabled=False)
            writer.subnet(net["id"], "198.51.100.0/24")
            writer.register("h2", "dvr", "192.0.2.2")
            writer.port(net["id"], host="h2")
            since = writer_app.state.context.hub.latest  # what h2's agent holds
            known = []
            changes_known = watcher_app.state.context.hub.changes_known

            def recording(host, after, retained):
                found = changes_known(host, after, retained)
                known.append(found is not None)
                return found

            monkeypatch.setattr(watcher_app.state.context.hub, "changes_known", recording)
            answers: list = []
            watch = threading.Thread(target=lambda: answers.append(watcher.call(
                "GET", "/dvr/v1/hosts/h2/watch", expect=200, since=since, timeout=20)))
            watch.start()
            threading.Event().wait(0.5)  # it long-polls
            port = writer.port(net["id"], host="h2")
            watch.join(25)
            assert answers and known and known[-1] is True
            expected = writer_app.state.context.run_read(
                lambda tx: dvr_protocol.watch_result(tx, "h2", since))
            assert answers[0]["changes"] == expected["changes"]
            assert {"kind": "port", "id": port["id"]} in answers[0]["changes"]
            read = writer_app.state.context.run_read(lambda tx: new_changes(tx.conn, since))
            assert read.writes == {expected["revision"]: (
                frozenset({"h2"}), tuple((c["kind"], c["id"]) for c in expected["changes"]))}
    finally:
        database.dispose()
