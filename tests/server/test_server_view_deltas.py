"""``GET /dvr/v1/hosts/{host}/view?since=R``: a delta from the view served at R, or the full
view when the server does not hold it; views built from the revision's shared parts equal
views built alone."""

import json
import random
from dataclasses import replace

import pytest
from sqlalchemy import text
from test_server_notifications import HOSTS, World

from dvr.model.hostview import HostView, NetworkView, host_view_from_dict
from dvr.model.hostview_delta import apply, compact_delta_dict, delta_from_dict, diff
from dvr.server import hostview
from dvr.server.hostview import build_host_view
from dvr.server.hostview_served import ServedViews
from dvr.server.serialize import to_jsonable
from dvr.server.services.notify import current_revision


def fetch(api, host, since=None):
    params = {} if since is None else {"since": since}
    return api.call("GET", f"/dvr/v1/hosts/{host}/view", expect=200, **params)


def alone(api, host) -> HostView:
    """The view built without any shared part (what the server answered before)."""
    return api.context.run_read(lambda tx: build_host_view(tx.conn, host))


@pytest.fixture
def small(api):
    api.register("h1", "dvr", "192.0.2.1")
    api.register("h2", "dvr", "192.0.2.2")
    for host in ("h1", "h2"):
        api.host_mac(host)
    net = api.network("blue", port_security_enabled=False)
    api.subnet(net["id"], "198.51.100.0/24")
    api.port(net["id"], host="h1")
    return net


def test_without_since_the_answer_is_the_view_as_before(api, small):
    raw = fetch(api, "h1")
    assert "full" not in raw
    assert host_view_from_dict(raw) == alone(api, "h1")


def test_a_delta_from_R_is_the_diff_of_the_view_served_at_R_and_the_view_now(api, small):
    first = fetch(api, "h1", since=0)
    assert first.pop("full") is True
    held = host_view_from_dict(first)
    api.port(small["id"], host="h2")
    api.register("h3", "dvr", "192.0.2.3")
    api.host_mac("h3")
    answer = fetch(api, "h1", since=held.revision)
    assert answer.pop("full") is False
    delta = delta_from_dict(answer)
    now = alone(api, "h1")
    assert delta == diff(held, now)
    assert (delta.from_revision, delta.to_revision) == (held.revision, now.revision)
    assert apply(held, delta) == now
    assert [h.host for h in delta.peer_host_macs.added] == ["h3"]
    (patch,) = delta.networks.changed
    assert [r.host for r in patch.remote_hosts.added] == ["h2"]
    # nothing changed since: an empty delta
    again = delta_from_dict(fetch(api, "h1", since=now.revision))
    assert again.empty and apply(now, again) == now


def test_an_unknown_revision_gets_the_full_view(api, small):
    for since in (0, 12345):
        answer = fetch(api, "h1", since=since)
        assert answer.pop("full") is True
        assert host_view_from_dict(answer) == alone(api, "h1")


def test_a_view_not_served_here_is_brought_up_to_date_while_nothing_concerned_its_host(
        api, small):
    """A view this process did not serve (another process did, or this one before a
    restart): an empty delta to the current revision while no change concerned its host
    since, nothing built; once one did, the full view."""
    first = fetch(api, "h1", since=0)
    assert first.pop("full") is True
    held = host_view_from_dict(first)
    api.context.served_views = ServedViews()  # a restarted server: it served nothing
    green = api.network("green", port_security_enabled=False)
    api.subnet(green["id"], "203.0.113.0/24")
    api.port(green["id"], host="h2")  # concerns h2, not h1
    answer = fetch(api, "h1", since=held.revision)
    assert answer.pop("full") is False
    delta = delta_from_dict(answer)
    assert delta.empty and delta.to_revision == api.revision() > held.revision
    assert apply(held, delta) == alone(api, "h1")
    assert api.context.served_views.served("h1", delta.to_revision) is None
    api.port(small["id"], host="h2")  # h1 learns h2's port: its view changed
    full = fetch(api, "h1", since=delta.to_revision)
    assert full.pop("full") is True and host_view_from_dict(full) == alone(api, "h1")
    # a host that changed since the revision named gets its full view too
    assert fetch(api, "h2", since=held.revision)["full"] is True


def test_the_encoded_delta_is_the_models(api, small):
    held = alone(api, "h1")
    api.port(small["id"], host="h2")
    delta = diff(held, alone(api, "h1"))
    assert compact_delta_dict(to_jsonable(delta)) == json.loads(json.dumps(delta.to_dict()))


@pytest.mark.parametrize("seed", [1, 2])
def test_agents_following_deltas_hold_exactly_the_views_along_a_random_history(api, seed):
    """Every host fetches like an agent after each write; what it holds is always the
    view built alone, and every answer to a host holding a view is a delta (a view at
    revision 0, before the first change, is held as nothing)."""
    rng = random.Random(seed)
    world = World(api, rng)
    held: dict[str, HostView] = {}
    kinds = {"delta": 0, "full": 0}
    for step in range(30):
        op = rng.choice(world.ops())
        op()
        for host in HOSTS:
            since = held[host].revision if host in held else 0
            answer = fetch(api, host, since=since)
            if answer.pop("full"):
                assert since == 0
                held[host] = host_view_from_dict(answer)
                kinds["full"] += 1
            else:
                held[host] = apply(held[host], delta_from_dict(answer))
                kinds["delta"] += 1
            assert held[host] == alone(api, host), f"step {step} {op.__name__} host {host}"
    assert kinds["delta"] >= 20 * len(HOSTS)


def test_what_did_not_change_stays_the_same_objects_at_the_next_revision(api, small):
    """(so that diffing a host's new view with its served one compares identities)"""
    api.port(small["id"], host="h2")

    def shared_view(host):
        return api.context.run_read(
            lambda tx: build_host_view(tx.conn, host, api.context.view_parts))

    first = shared_view("h1")
    other = api.network("other", port_security_enabled=False)
    api.subnet(other["id"], "203.0.113.0/24")
    api.port(other["id"], host="h2")  # h2's view changes, h1's does not
    second = shared_view("h1")
    assert second.revision > first.revision
    assert second == replace(first, revision=second.revision)
    assert second.networks[0].remote_hosts[0] is first.networks[0].remote_hosts[0]
    assert second.peer_host_macs[0] is first.peer_host_macs[0]


def network(view: HostView, name: str) -> NetworkView:
    return next(n for n in view.networks if n.name == name)


def shared_view(api, host) -> HostView:
    return api.context.run_read(
        lambda tx: build_host_view(tx.conn, host, api.context.view_parts))


@pytest.fixture
def routed(api, small):
    """``small`` with h1's port behind router R (a gateway to ``ext``, a floating IP)."""
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    subnet_id = api.list("subnet", network_id=small["id"])[0]["id"]
    router = api.router("R")
    api.add_interface(router["id"], subnet_id=subnet_id)
    api.set_gateway(router["id"], ext["id"])
    port = api.list("port", network_id=small["id"], **{"binding:host_id": "h1"})[0]
    api.fip(ext["id"], port_id=port["id"])
    api.port(small["id"], host="h2")
    return router


def test_a_hosts_network_and_router_stay_the_same_objects_while_unchanged(api, routed):
    """What a view makes of a shared part for its host (a network without the host's own
    remote entry, a router with its floating IPs) is taken again at the next revision."""
    first = shared_view(api, "h1")
    assert first.routers[0].floating_ips and len(network(first, "blue").remote_hosts) == 1
    other = api.network("other", port_security_enabled=False)
    api.subnet(other["id"], "198.18.0.0/24")
    api.port(other["id"], host="h2")  # h2's view changes, h1's does not
    second = shared_view(api, "h1")
    assert second.revision > first.revision
    assert second == replace(first, revision=second.revision) == alone(api, "h1")
    assert network(second, "blue") is network(first, "blue")
    assert second.routers[0] is first.routers[0]
    assert second.ports[0] is first.ports[0]


def test_a_floating_ip_mapped_on_a_host_reads_its_rows_again(api, small, routed):
    """A second floating IP on h1 (its FIP gateway exists already) changes only the
    floating IPs h1 serves: h1's own rows are read again, h2's are kept."""
    shared_view(api, "h1"), shared_view(api, "h2")
    kept = api.context.view_parts.host_parts.get("h2").own
    port = api.port(small["id"], host="h1")
    shared_view(api, "h1"), shared_view(api, "h2")
    [ext] = api.list("network", name="ext")
    api.fip(ext["id"], port_id=port["id"])
    view = shared_view(api, "h1")
    assert len(view.routers[0].floating_ips) == 2 and view == alone(api, "h1")
    assert shared_view(api, "h2") == alone(api, "h2")
    assert api.context.view_parts.host_parts.get("h2").own.ports is kept.ports


def test_a_part_no_view_of_the_last_revisions_needed_is_still_reused(api, small):
    """(a host woken after several revisions whose views did not need its network)"""
    first = shared_view(api, "h1")
    for cidr in ("198.18.0.0/24", "198.18.1.0/24"):  # h2's views, without ``small``
        other = api.network("other", port_security_enabled=False)
        api.subnet(other["id"], cidr)
        api.port(other["id"], host="h2")
        assert all(n.id != small["id"] for n in shared_view(api, "h2").networks)
    second = shared_view(api, "h1")
    assert second == replace(first, revision=second.revision) == alone(api, "h1")
    assert second.networks[0] is first.networks[0]


@pytest.mark.parametrize(("seed", "views_every", "some_hosts"),
                         [(3, 1, False), (4, 1, False), (5, 1, False), (6, 1, False),
                          (7, 1, False), (8, 1, False), (9, 3, False), (10, 4, False),
                          (11, 1, True), (12, 2, True), (13, 1, True)])
def test_views_keeping_what_a_write_did_not_change_are_the_views_built_alone(
        api, seed, views_every, some_hosts, monkeypatch):
    """After random writes of this process (``views_every`` of them between two rounds of
    views, each round of every host or, ``some_hosts``, of a random few), the next
    revision keeps the networks and routers the writes did not change
    (``Impact.changed_parts``, merged; also those no view of the revisions between held)
    instead of reading them again; every host's view is still exactly the view built
    alone."""
    read: list[str] = []  # the networks and routers the shared views read
    for name in ("_shared_networks", "_shared_routers"):
        original = getattr(hostview, name)

        def reading(conn, ids, original=original):
            if conn.info.get("counted"):
                read.extend(ids)
            return original(conn, ids)

        monkeypatch.setattr(hostview, name, reading)
    own_reads: list[str] = []  # the hosts whose own rows the views read
    hosted_on = hostview.routers_hosted_on

    def reading_own(conn, host):
        if conn.info.get("counted"):
            own_reads.append(host)
        return hosted_on(conn, host)

    monkeypatch.setattr(hostview, "routers_hosted_on", reading_own)

    def counted_view(tx, host):
        tx.conn.info["counted"] = True
        try:
            return build_host_view(tx.conn, host, api.context.view_parts)
        finally:
            tx.conn.info.pop("counted")

    rng = random.Random(seed)
    world = World(api, rng)
    held = 0
    for step in range(60):
        op = rng.choice(world.ops())
        op()
        if step % views_every:
            continue
        for host in rng.sample(HOSTS, rng.randint(1, len(HOSTS))) if some_hosts else HOSTS:
            view = api.context.run_read(lambda tx, h=host: counted_view(tx, h))
            assert view == alone(api, host), f"step {step} {op.__name__} host {host}"
            held += len({n.id for n in view.networks} | {r.id for r in view.routers})
    if views_every == 1 and not some_hosts:  # (else fewer views hold what was kept)
        assert 0 < len(read) < held / 2  # most of what the views held was kept, not read again
    # a host's own rows are read again only after a write that may have changed them
    assert 0 < len(own_reads) < 60 / views_every * len(HOSTS) / 2 or some_hosts


def test_a_revision_of_another_process_keeps_nothing(api, small):
    first = shared_view(api, "h1")
    with api.context.db.write() as conn:  # another server process's write and revision
        conn.execute(text("UPDATE networks SET name = 'renamed'"))
        conn.execute(text("UPDATE server_state SET revision = revision + 1"))
    second = shared_view(api, "h1")
    assert second.revision == first.revision + 1
    assert second == alone(api, "h1") and second.networks[0].name == "renamed"


def test_a_hosts_own_rows_are_read_again_after_a_write_naming_it_or_another_process(
        api, small):
    """A port bound to h2 changes h2's own rows, not h1's: h1's view keeps its rows (a
    port of its network added elsewhere changes only the shared network); a revision of
    another process reads every host's rows again."""
    first = shared_view(api, "h1")
    kept = api.context.view_parts.host_parts.get("h1").own
    api.port(small["id"], host="h2")
    second = shared_view(api, "h1")
    assert second == alone(api, "h1") and second.revision > first.revision
    assert api.context.view_parts.host_parts.get("h1").own.ports is kept.ports
    api.port(small["id"], host="h1")
    third = shared_view(api, "h1")
    assert third == alone(api, "h1") and len(third.ports) == len(second.ports) + 1
    with api.context.db.write() as conn:  # another server process's write and revision
        conn.execute(text("UPDATE dvr_hosts SET tunnel_ip = '192.0.2.99' WHERE host = 'h1'"))
        conn.execute(text("UPDATE server_state SET revision = revision + 1"))
    fourth = shared_view(api, "h1")
    assert fourth.tunnel_ip == "192.0.2.99" and fourth == alone(api, "h1")


def test_hosts_that_see_a_groups_members_change_keep_their_own_rows(api):
    """A port joining the default group changes the address set that the group's rules
    show on every host with a member: h1 is told (its view changes), but no row of h1's
    own changed, so its view keeps them; the same for a rule added to the group."""
    for number, host in enumerate(("h1", "h2"), start=1):
        api.register(host, "dvr", f"192.0.2.{number}")
        api.host_mac(host)
    net = api.network("guarded")  # port security on: ports join the default group
    api.subnet(net["id"], "198.51.100.0/24")
    api.port(net["id"], host="h1")
    first = shared_view(api, "h1")
    kept = api.context.view_parts.host_parts.get("h1").own
    api.port(net["id"], host="h2")
    second = shared_view(api, "h1")
    assert second.revision > first.revision and second == alone(api, "h1")
    assert second.address_sets != first.address_sets  # h2's port's address, which h1 shows
    assert api.context.view_parts.host_parts.get("h1").own.ports is kept.ports
    group = api.list("security_group", name="default")[0]
    api.create("security_group_rule", security_group_id=group["id"], direction="ingress",
               protocol="tcp", port_range_min=22, port_range_max=22)
    third = shared_view(api, "h1")
    assert third.revision > second.revision and third == alone(api, "h1")
    assert api.context.view_parts.host_parts.get("h1").own.ports is kept.ports


def test_a_part_no_view_held_is_not_kept(api, small):
    """A router no host sees can change without a revision (nobody to tell): the next
    revision keeps only what a view of the revision before held."""
    subnet_id = api.list("subnet", network_id=small["id"])[0]["id"]
    router = api.router("R")
    api.add_interface(router["id"], subnet_id=subnet_id)
    port = api.list("port", network_id=small["id"], **{"binding:host_id": "h1"})[0]
    assert [r.name for r in shared_view(api, "h1").routers] == ["R"]
    api.update("port", port["id"], **{"binding:host_id": ""})  # h1 no longer hosts R
    assert shared_view(api, "h1").routers == ()
    revision = api.context.run_read(lambda tx: current_revision(tx.conn))
    api.update("router", router["id"], name="R2")  # nobody sees it: no revision
    assert api.context.run_read(lambda tx: current_revision(tx.conn)) == revision
    api.update("port", port["id"], **{"binding:host_id": "h1"})  # R not told changed
    view = shared_view(api, "h1")
    assert [r.name for r in view.routers] == ["R2"] and view == alone(api, "h1")


def test_a_network_whose_hosts_change_with_a_router_is_read_again(api, small):
    """h1's port stops being one a router serves: h1 stops hosting the router, so it stops
    touching the router's other network, and h2 there stops seeing it as a remote host (a
    write that changes no L2 entry and no router)."""
    subnet_id = api.list("subnet", network_id=small["id"])[0]["id"]
    other = api.network("other", port_security_enabled=False)
    other_subnet = api.subnet(other["id"], "198.18.0.0/24")
    router = api.router("R")
    for subnet in (subnet_id, other_subnet["id"]):
        api.add_interface(router["id"], subnet_id=subnet)
    api.port(other["id"], host="h2")
    port = api.list("port", network_id=small["id"], **{"binding:host_id": "h1"})[0]
    before = shared_view(api, "h2")
    assert [r.host for r in network(before, "other").remote_hosts] == ["h1"]
    api.update("port", port["id"], device_owner="")
    after = shared_view(api, "h2")
    assert after == alone(api, "h2") and network(after, "other").remote_hosts == ()


def test_several_writes_between_two_views_keep_what_none_of_them_changed(api, small,
                                                                        monkeypatch):
    """Three revisions elsewhere (ports on h2 of another network) between two views of
    h1: its network and its own rows are kept across all three, not read again."""
    shared_view(api, "h1")
    read: list[str] = []
    original = hostview._shared_networks

    def reading(conn, ids):
        read.extend(ids)
        return original(conn, ids)

    monkeypatch.setattr(hostview, "_shared_networks", reading)
    other = api.network("other", port_security_enabled=False)
    api.subnet(other["id"], "203.0.113.0/24")
    revision = shared_view(api, "h1").revision
    read.clear()
    kept = api.context.view_parts.host_parts.get("h1").own
    for _ in range(3):
        api.port(other["id"], host="h2")
    second = shared_view(api, "h1")
    assert second.revision == revision + 3
    assert small["id"] not in read
    assert api.context.view_parts.host_parts.get("h1").own.ports is kept.ports
    assert second == alone(api, "h1")


def test_a_router_changed_while_no_host_had_it_is_read_again_when_a_host_takes_it(api, small):
    """h1 hosts R and holds it in its view; h1's port goes (h1 stops hosting R), R gains an
    interface while no host has it (no revision: nobody is told), then a port on h1 makes
    it host R again: h1's next view (no view built in between) shows R as it is now, not
    as it was kept from the first view."""
    subnet_id = api.list("subnet", network_id=small["id"])[0]["id"]
    router = api.router("R")
    api.add_interface(router["id"], subnet_id=subnet_id)
    first = shared_view(api, "h1")
    assert [r.id for r in first.routers] == [router["id"]]
    for port in api.list("port", network_id=small["id"], **{"binding:host_id": "h1"}):
        api.delete("port", port["id"])
    assert api.router_hosts(router["id"]) == set()
    other = api.network("other", port_security_enabled=False)
    other_subnet = api.subnet(other["id"], "203.0.113.0/24")
    api.add_interface(router["id"], subnet_id=other_subnet["id"])
    api.port(small["id"], host="h1")
    second = shared_view(api, "h1")
    assert second == alone(api, "h1")
    assert len(second.routers[0].interfaces) == len(first.routers[0].interfaces) + 1
