"""The incremental path (DesiredStateCache) gives exactly the full computation's result."""

from __future__ import annotations

from dataclasses import replace

import pytest
from desired_scenarios import (
    BLUE,
    BLUE_2,
    HOST_1,
    HOST_2,
    IF_ORANGE,
    ORANGE_1,
    ROUTER,
    Cloud,
    Host,
    Interface,
    Net,
    Router,
    Vm,
    east_west_cloud,
)
from firewall_scenarios import conjunction_problems, draw_overlay, edit_overlay
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dvr.agent.desired import (
    DesiredConfig,
    DesiredStateCache,
    HostInputs,
    LocalVlanExhausted,
    compute_desired_state,
)
from dvr.model.hostview import OWNER_DHCP, OWNER_ROUTER_SNAT, HostView

ME = "h0"


def share_unchanged(old: HostView | None, new: HostView) -> HostView:
    """Reuse the previous view's objects where equal (what a delta-applying client does)."""
    if old is None:
        return new

    def merge(old_items: tuple, new_items: tuple, key) -> tuple:
        if old_items == new_items:
            return old_items
        previous = {key(item): item for item in old_items}
        return tuple(
            previous[key(item)] if previous.get(key(item)) == item else item for item in new_items
        )

    return replace(
        new,
        ports=merge(old.ports, new.ports, lambda p: p.id),
        networks=merge(old.networks, new.networks, lambda n: n.id),
        routers=merge(old.routers, new.routers, lambda r: r.id),
        peer_host_macs=merge(old.peer_host_macs, new.peer_host_macs, lambda m: m.host),
        security_groups=merge(old.security_groups, new.security_groups, lambda g: g.id),
        address_sets=merge(old.address_sets, new.address_sets, lambda a: a.id),
    )


# --- random clouds and edits -----------------------------------------------------------------

MACS = [f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}" for i in range(1, 40)]


def draw_cloud(data: st.DataObject) -> Cloud:
    host_count = data.draw(st.integers(1, 4), label="hosts")
    hosts = tuple(
        Host(f"h{i}", f"198.51.100.{10 + i}", f"fa:16:3f:00:00:{i:02x}") for i in range(host_count)
    )
    network_count = data.draw(st.integers(1, 4), label="networks")
    networks = tuple(
        Net(f"net-{i}", 100 + i, f"sub-{i}", f"203.0.113.{64 * i}/26",
            network_type=data.draw(st.sampled_from(["vxlan", "vxlan", "vxlan", "vlan"])))
        for i in range(network_count)
    )
    external = (Net("ext-net", 0, "ext-sub", "192.0.2.0/24", mtu=1500, network_type="flat")
                if data.draw(st.booleans(), label="external network") else None)
    cloud = Cloud(hosts=hosts, networks=networks, vms=(), external=external)
    for _ in range(data.draw(st.integers(1, 8), label="vms")):
        cloud = add_vm(data, cloud)
    for index in range(data.draw(st.integers(0, 3), label="routers")):
        nets = data.draw(st.sets(st.sampled_from([n.id for n in networks]), min_size=1,
                                 max_size=3))
        cloud = cloud.with_router(
            Router(f"r{index}", tuple(Interface(f"if-{index}-{n}", n, draw_mac(data))
                                      for n in sorted(nets)),
                   distributed=data.draw(st.sampled_from([True, True, False])),
                   gateway_ip=data.draw(st.sampled_from([None, "192.0.2.10"])),
                   snat_host=data.draw(st.sampled_from([ME, ME, "h1"])),
                   fips=tuple(("192.0.2.50", v.id) for v in cloud.vms[:1]
                              if data.draw(st.booleans(), label="fip"))))
    return cloud


def draw_mac(data: st.DataObject) -> str:
    return data.draw(st.sampled_from(MACS), label="mac")


def add_vm(data: st.DataObject, cloud: Cloud) -> Cloud:
    index = data.draw(st.integers(0, 30), label="vm id")
    net = data.draw(st.sampled_from(cloud.networks), label="vm net")
    host = data.draw(st.sampled_from((cloud.hosts[0],) * 2 + cloud.hosts), label="vm host")
    owner = data.draw(st.sampled_from(["compute:nova", "compute:nova", OWNER_DHCP,
                                       OWNER_ROUTER_SNAT]))
    ip = f"203.0.113.{64 * int(net.id.split('-')[1]) + 2 + index}"
    return cloud.with_vm(Vm(f"vm-{index:02d}", net.id, draw_mac(data), ip, host.name, owner))


def edit(data: st.DataObject, cloud: Cloud, unplugged: set[str], vlans: dict[str, int],
         stale: dict[str, str]) -> Cloud:
    """One random change of the kinds the server sends (or the host observes)."""
    kind = data.draw(st.sampled_from([
        "add_vm", "remove_vm", "vm_mac", "move_vm", "vm_admin",
        "add_interface", "remove_interface", "interface_mac", "remove_router", "router_flags",
        "add_host", "remove_host", "host_mac", "tunnel_ip", "my_host_mac",
        "unplug", "replug", "stale_vif", "vlans", "revision", "route",
        "gateway", "gateway", "fip", "fip", "fip",
    ]), label="edit")
    vms = list(cloud.vms)
    if kind == "add_vm":
        return add_vm(data, cloud)
    if kind == "remove_vm" and vms:
        return cloud.without_vm(data.draw(st.sampled_from(vms)).id)
    if kind == "vm_mac" and vms:
        return cloud.with_vm(replace(data.draw(st.sampled_from(vms)), mac=draw_mac(data)))
    if kind == "move_vm" and vms:
        host = data.draw(st.sampled_from(cloud.hosts)).name
        return cloud.with_vm(replace(data.draw(st.sampled_from(vms)), host=host))
    if kind == "vm_admin" and vms:
        vm = data.draw(st.sampled_from(vms))
        return cloud.with_vm(replace(vm, admin_state_up=not vm.admin_state_up))
    if kind == "add_interface":
        router_id = f"r{data.draw(st.integers(0, 3))}"
        router = next((r for r in cloud.routers if r.id == router_id), Router(router_id, ()))
        net = data.draw(st.sampled_from(cloud.networks)).id
        if any(i.network_id == net for i in router.interfaces):
            return cloud
        interface = Interface(f"if-{router_id}-{net}", net, draw_mac(data))
        return cloud.with_router(replace(router, interfaces=router.interfaces + (interface,)))
    if kind in ("remove_interface", "interface_mac") and cloud.routers:
        router = data.draw(st.sampled_from(cloud.routers))
        if not router.interfaces:
            return cloud
        victim = data.draw(st.sampled_from(router.interfaces))
        if kind == "remove_interface":
            rest = tuple(i for i in router.interfaces if i != victim)
        else:
            rest = tuple(replace(i, mac=draw_mac(data)) if i == victim else i
                         for i in router.interfaces)
        return cloud.with_router(replace(router, interfaces=rest))
    if kind == "remove_router" and cloud.routers:
        victim = data.draw(st.sampled_from(cloud.routers)).id
        return replace(cloud, routers=tuple(r for r in cloud.routers if r.id != victim))
    if kind == "router_flags" and cloud.routers:
        router = data.draw(st.sampled_from(cloud.routers))
        return cloud.with_router(replace(router, distributed=data.draw(st.booleans()),
                                         admin_state_up=data.draw(st.booleans())))
    if kind == "add_host":
        index = data.draw(st.integers(1, 6))
        return cloud.with_host(Host(f"h{index}", f"198.51.100.{10 + index}",
                                    f"fa:16:3f:00:00:{index:02x}"))
    peers = [h for h in cloud.hosts if h.name != ME]
    if kind == "remove_host" and peers:
        return cloud.without_host(data.draw(st.sampled_from(peers)).name)
    if kind == "host_mac" and peers:
        host = data.draw(st.sampled_from(peers))
        mac = data.draw(st.sampled_from([None, "fa:16:3f:00:01:01", "fa:16:3f:00:01:02"]))
        return cloud.with_host(replace(host, mac=mac))
    if kind == "tunnel_ip" and peers:
        host = data.draw(st.sampled_from(peers))
        last_octet = data.draw(st.integers(10, 20))
        return cloud.with_host(replace(host, tunnel_ip=f"198.51.100.{last_octet}"))
    if kind == "my_host_mac":  # unhandled change: full recompute
        me = cloud.host(ME)
        return cloud.with_host(replace(me, mac=data.draw(st.sampled_from(
            [None, "fa:16:3f:00:00:00", "fa:16:3f:00:0f:0f"]))))
    if kind == "unplug" and vms:
        unplugged.add(data.draw(st.sampled_from(vms)).id)
        return cloud
    if kind == "replug" and unplugged:
        unplugged.discard(data.draw(st.sampled_from(sorted(unplugged))))
        return cloud
    if kind == "stale_vif":  # a tap left behind, or our own veth end seen by iface-id
        port_id = data.draw(st.sampled_from([f"vm-{i:02d}" for i in range(31)] + ["if-r0-net-0"]))
        stale[port_id] = data.draw(st.sampled_from([f"tap{port_id}", "qrb-if-r0-net-0",
                                                    "stale-tap"]))
        return cloud
    if kind == "vlans":  # e.g. an agent restart that read other tags back from br-int
        for network in cloud.networks:
            if data.draw(st.booleans()):
                vlans[network.id] = data.draw(st.integers(0, 6))
        return cloud
    if kind == "revision":
        return replace(cloud, revision=cloud.revision + 1)
    if kind == "gateway" and cloud.routers:
        router = data.draw(st.sampled_from(cloud.routers))
        return cloud.with_router(replace(
            router,
            gateway_ip=data.draw(st.sampled_from([None, "192.0.2.10", "192.0.2.11"])),
            snat_host=data.draw(st.sampled_from([ME, *(h.name for h in cloud.hosts), None])),
            enable_snat=data.draw(st.booleans())))
    if kind == "fip" and cloud.routers and vms:
        router = data.draw(st.sampled_from(cloud.routers))
        fip = (data.draw(st.sampled_from(["192.0.2.50", "192.0.2.51", "192.0.2.52"])),
               data.draw(st.sampled_from([v for v in vms if v.host == ME] or vms)).id)
        fips = tuple(f for f in router.fips if f[0] != fip[0])
        if fip not in router.fips:
            fips += (fip,)
        return cloud.with_router(replace(router, fips=fips))
    if kind == "route" and cloud.routers:
        router = data.draw(st.sampled_from(cloud.routers))
        routes = data.draw(st.sampled_from([(), (("198.18.0.0/16", "203.0.113.5"),),
                                            (("198.19.0.0/16", "203.0.113.70"),)]))
        return cloud.with_router(replace(router, routes=routes))
    return cloud


def routed_cloud(data: st.DataObject) -> Cloud:
    """A random cloud that starts with the east/west fast path on ME: a distributed router
    on two tunnelled networks with a local VM on each (then random edits take it apart)."""
    cloud = draw_cloud(data)
    networks = tuple(replace(n, network_type="vxlan") if n.id in ("net-0", "net-1") else n
                     for n in cloud.networks)
    if len(networks) < 2:
        networks += (Net("net-1", 101, "sub-1", "203.0.113.64/26"),)
    cloud = replace(cloud, networks=networks)
    for index, net in enumerate(("net-0", "net-1")):
        ip = f"203.0.113.{64 * index + 40}"  # above the drawn VMs' addresses
        cloud = cloud.with_vm(Vm(f"vm-r{index}", net, MACS[30 + index], ip, ME))
    return cloud.with_router(Router("r9", (Interface("if-9-net-0", "net-0", MACS[35]),
                                           Interface("if-9-net-1", "net-1", MACS[36]))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_incremental_equals_full_on_random_histories(data):
    check_random_history(data, draw_cloud(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_incremental_equals_full_on_random_histories_of_a_routed_cloud(data):
    check_random_history(data, routed_cloud(data))


def check_random_history(data: st.DataObject, cloud: Cloud) -> None:
    share = data.draw(st.booleans(), label="share unchanged objects")
    mode = data.draw(st.sampled_from(["dvr", "dvr", "dvr_snat", "legacy"]), label="mode")
    mappings = data.draw(st.sampled_from([(), (("public", "br-ex"),)]), label="mappings")
    east_west = data.draw(st.sampled_from(["openflow", "openflow", "namespace"]),
                          label="east_west")
    layout = data.draw(st.sampled_from(["bridge", "bridge", "folded"]), label="tunnel_layout")
    config = DesiredConfig(agent_mode=mode, bridge_mappings=mappings, east_west=east_west,
                           tunnel_layout=layout)
    cache = DesiredStateCache(config)
    unplugged: set[str] = set()
    stale: dict[str, str] = {}
    vlans: dict[str, int] = {}
    previous_view: HostView | None = None
    overlay = draw_overlay(data, sorted(v.id for v in cloud.vms))
    for _ in range(data.draw(st.integers(2, 10), label="steps")):
        view = overlay.apply(cloud.view(ME))
        if share:
            view = share_unchanged(previous_view, view)
        plugged = {**stale, **{k: v for k, v in cloud.plugged(ME).items() if k not in unplugged}}
        inputs = HostInputs(plugged=plugged, previous_local_vlans=dict(vlans))
        full = compute_desired_state(view, inputs, config)
        incremental = cache.update(view, inputs)
        assert incremental == full
        assert conjunction_problems(full.bridge("br-int").flows, one_flow_per_match=False) == []
        dvr_port_flows = any(f.owner.startswith("port:") for f in full.bridge("br-int").flows)
        event(f"dvr port flows: {dvr_port_flows}")
        fast_path = sum(f.owner.startswith("fastpath:") for f in full.bridge("br-int").flows)
        event(f"fast-path flows: {min(fast_path, 4)}")
        event(f"namespaces: {min(len(full.namespaces), 2)}")
        kinds = sorted({n.name.split("-")[0] for n in full.namespaces} - {"qrouter"})
        event(f"north/south namespaces: {kinds}")
        event(f"incremental step was full: {cache.last_stats.full}")
        previous_view = view
        event(f"firewalled ports: {min(sum(p.port_security_enabled for p in view.ports), 2)}")
        vlans = dict(full.local_vlans)
        if data.draw(st.booleans(), label="security group edit"):
            edit_overlay(data, overlay, sorted(p.id for p in view.ports))
        else:
            cloud = edit(data, cloud, unplugged, vlans, stale)


# --- examples: what gets recomputed ------------------------------------------------------------


@pytest.fixture
def cloud() -> Cloud:
    return east_west_cloud()


def run(cache: DesiredStateCache, cloud: Cloud, host: str, previous=None):
    inputs = HostInputs(plugged=cloud.plugged(host), previous_local_vlans=previous or {})
    state = cache.update(cloud.view(host), inputs)
    assert state == compute_desired_state(cloud.view(host), inputs, cache.config)
    return state


def test_first_update_is_full(cloud):
    cache = DesiredStateCache()
    run(cache, cloud, HOST_2)
    assert cache.last_stats.full


def test_identical_view_recomputes_nothing(cloud):
    cache = DesiredStateCache()
    state = run(cache, cloud, HOST_2)
    run(cache, cloud, HOST_2, dict(state.local_vlans))
    assert not cache.last_stats.full
    assert cache.last_stats.recomputed == ()


def test_port_mac_change_recomputes_only_that_port_and_router(cloud):
    cache = DesiredStateCache()
    state = run(cache, cloud, HOST_2)
    changed = cloud.with_vm(replace(cloud.vm(ORANGE_1), mac="fa:16:3e:00:02:77"))
    run(cache, changed, HOST_2, dict(state.local_vlans))
    # the port's own piece, and the router whose static ARP entry changed (its router and
    # SNAT pieces: both read the ARP entries; only the router's output changes here)
    assert cache.last_stats.recomputed == (
        f"fastpath:{ROUTER}", f"port:{ORANGE_1}", f"router:{ROUTER}", f"snat:{ROUTER}")
    assert cache.last_stats.changed == (
        f"fastpath:{ROUTER}", f"port:{ORANGE_1}", f"router:{ROUTER}")


def test_unplugging_recomputes_only_that_port(cloud):
    cache = DesiredStateCache()
    view = cloud.view(HOST_2)
    first = cache.update(view, HostInputs(plugged=cloud.plugged(HOST_2)))
    plugged = {k: v for k, v in cloud.plugged(HOST_2).items() if k != BLUE_2}
    inputs = HostInputs(plugged=plugged, previous_local_vlans=dict(first.local_vlans))
    assert cache.update(view, inputs) == compute_desired_state(view, inputs)
    # its port and the fast path of the router on its network (blue-2 was a source and a
    # destination there)
    assert cache.last_stats.recomputed == (f"fastpath:{ROUTER}", f"port:{BLUE_2}")
    assert cache.last_stats.changed == (f"fastpath:{ROUTER}", f"port:{BLUE_2}")


def test_removing_interface_recomputes_router_and_ports_of_that_subnet(cloud):
    cache = DesiredStateCache()
    state = run(cache, cloud, HOST_2)
    router = next(r for r in cloud.routers if r.id == ROUTER)
    trimmed = cloud.with_router(replace(router, interfaces=tuple(
        i for i in router.interfaces if i.port_id != IF_ORANGE)))
    run(cache, trimmed, HOST_2, dict(state.local_vlans))
    assert f"port:{ORANGE_1}" in cache.last_stats.changed
    assert f"router:{ROUTER}" in cache.last_stats.changed
    assert f"port:{BLUE_2}" not in cache.last_stats.recomputed


def test_own_host_mac_change_is_a_full_recompute(cloud):
    cache = DesiredStateCache()
    run(cache, cloud, HOST_1)
    changed = cloud.with_host(replace(cloud.host(HOST_1), mac="fa:16:3f:00:00:99"))
    run(cache, changed, HOST_1)
    assert cache.last_stats.full


def test_new_peer_host_mac_recomputes_only_its_piece(cloud):
    cache = DesiredStateCache()
    state = run(cache, cloud, HOST_1)
    bigger = cloud.with_host(Host("compute-9", "198.51.100.19", "fa:16:3f:00:00:09"))
    run(cache, bigger, HOST_1, dict(state.local_vlans))
    assert cache.last_stats.recomputed == ("hostmac:compute-9",)


def test_vlans_stay_stable_across_updates_and_restarts(cloud):
    cache = DesiredStateCache()
    state = run(cache, cloud, HOST_1)
    grown = cloud.with_vm(Vm("vm-green", "net-green-0000-0000-0000-000000000003",
                             "fa:16:3e:00:09:09", "203.0.113.140", HOST_1))
    after = run(cache, grown, HOST_1, dict(state.local_vlans))
    assert set(state.local_vlans) <= set(after.local_vlans)
    restarted = DesiredStateCache().update(
        grown.view(HOST_1),
        HostInputs(plugged=grown.plugged(HOST_1), previous_local_vlans=dict(after.local_vlans)))
    assert restarted == after
    assert BLUE in dict(after.local_vlans)


def test_failed_update_leaves_cache_usable(cloud):
    cache = DesiredStateCache()
    run(cache, cloud, HOST_1)
    view = cloud.view(HOST_1)
    template = view.networks[0]
    too_many = replace(view, networks=view.networks + tuple(
        replace(template, id=f"n{i:04d}", segmentation_id=5000 + i) for i in range(4095)))
    with pytest.raises(LocalVlanExhausted):
        cache.update(too_many, HostInputs())
    run(cache, cloud, HOST_1)
    assert cache.last_stats.full
    assert HOST_2  # (scenario sanity)
