"""Every flow family and port of br-int / br-tun, and ownership of flows."""

from __future__ import annotations

from dataclasses import replace

import pytest
from desired_scenarios import (
    BLUE,
    BLUE_2,
    BLUE_SUBNET,
    BLUE_VNI,
    GREEN_1,
    HOST_1,
    HOST_2,
    HOST_3,
    HOST_MAC_1,
    HOST_MAC_2,
    HOST_MAC_3,
    IF_BLUE_MAC,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE,
    ORANGE_1,
    ORANGE_SUBNET,
    ORANGE_VNI,
    ROUTER,
    TUNNEL_IP_1,
    TUNNEL_IP_2,
    TUNNEL_IP_3,
    Cloud,
    east_west_cloud,
    tap_name,
)

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.names import (
    router_interface_bridge_port_name,
    router_interface_device_name,
    vxlan_port_name,
)
from dvr.agent.desired.openflow import (
    DROP,
    STRIP_VLAN,
    Match,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
    SetTunnel,
    port_text,
)
from dvr.agent.desired.state import (
    OWNER_COOKIE_MASK,
    BridgeState,
    DesiredState,
    Flow,
    owner_cookie_prefix,
)
from dvr.agent.desired.tables import PRIO_INT_ACCESS_PORT
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.model.hostview import (
    OWNER_ROUTER_SNAT,
    HostMac,
    HostView,
    L2Entry,
    RemoteHost,
    RouterInterfaceView,
    RouterView,
)


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return east_west_cloud()


DEFAULT = DesiredConfig()


def state_of(view: HostView, plugged: dict[str, str] | None = None,
             config: DesiredConfig = DEFAULT) -> DesiredState:
    return compute_desired_state(view, HostInputs(plugged=plugged or {}), config)


def host_state(cloud: Cloud, host: str, **kwargs) -> DesiredState:
    return state_of(cloud.view(host), cloud.plugged(host), **kwargs)


def bridge(state: DesiredState, name: str) -> BridgeState:
    found = state.bridge(name)
    assert found is not None
    return found


def flows(state: DesiredState, name: str, table: int | None = None,
          owner: str | None = None) -> set[Flow]:
    return {
        f for f in bridge(state, name).flows
        if (table is None or f.table == table) and (owner is None or f.owner == owner)
    }


def is_zone_flow(flow: Flow) -> bool:
    """Table 0's "this access port's frames carry their VLAN in reg6" flow."""
    return flow.table == 0 and flow.priority == PRIO_INT_ACCESS_PORT


def as_text(found: set[Flow]) -> set[tuple[int, int, str, str]]:
    """The flows as ovs-ofctl text (the one rendering), ports quoted by ``port_text``."""
    return {(f.table, f.priority, f.match_text, f.actions_text) for f in found}


PATCH_INT, PATCH_TUN = port_text("patch-int"), port_text("patch-tun")


def vlan(state: DesiredState, network_id: str) -> int:
    return dict(state.local_vlans)[network_id]


def with_router(view: HostView, router: RouterView) -> HostView:
    return replace(view, routers=tuple(router if r.id == router.id else r for r in view.routers))


# --- skeletons and ports ------------------------------------------------------------------------


def test_integration_bridge_skeleton(cloud):
    state = host_state(cloud, HOST_1)
    assert as_text(flows(state, "br-int", owner="bridge:br-int")) == {
        (0, 0, "", "resubmit(,60)"),
        (1, 0, "", "resubmit(,60)"),
        (60, 3, "", "NORMAL"),
        # the firewall tables: misses drop, invalid connections drop, 73 returns to 60
        (71, 0, "", "drop"), (72, 0, "", "drop"), (81, 0, "", "drop"), (82, 0, "", "drop"),
        (72, 100, "ct_state=+trk+inv", "drop"), (82, 100, "ct_state=+trk+inv", "drop"),
        (73, 0, "", "resubmit(,60)"),
        # the east/west fast path's table: TTL 0/1 and anything unknown to the namespace
        (65, 30, "ip,nw_ttl=0", "NORMAL"),
        (65, 30, "ip,nw_ttl=1", "NORMAL"),
        (65, 0, "", "NORMAL"),
    }


def test_integration_bridge_skeleton_without_the_fast_path(cloud):
    state = host_state(cloud, HOST_1, config=DesiredConfig(east_west="namespace"))
    assert {f.table for f in flows(state, "br-int")} == {0, 1, 60, 71, 72, 73, 81, 82}


def test_tunnel_bridge_skeleton(cloud):
    state = host_state(cloud, HOST_1)
    assert as_text(flows(state, "br-tun", owner="bridge:br-tun")) == {
        (0, 1, f"in_port={PATCH_INT}", "resubmit(,1)"),
        (0, 0, "", "drop"),
        (1, 0, "", "resubmit(,2)"),
        (2, 1, "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00", "resubmit(,20)"),
        (2, 1, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", "resubmit(,22)"),
        (4, 0, "", "drop"),
        (9, 0, "", "resubmit(,10)"),
        (10, 1, "", f"output:{PATCH_INT}"),
        (20, 0, "", "resubmit(,22)"),
        (22, 0, "", "drop"),
    }


def test_bridges_patch_ports_and_datapath(cloud):
    state = host_state(cloud, HOST_1)
    assert [b.name for b in state.bridges] == ["br-int", "br-tun"]
    assert all(b.datapath_type == "netdev" and b.fail_mode == "secure" for b in state.bridges)
    patch_tun = next(p for p in bridge(state, "br-int").ports if p.name == "patch-tun")
    patch_int = next(p for p in bridge(state, "br-tun").ports if p.name == "patch-int")
    assert (patch_tun.type, patch_tun.options) == ("patch", (("peer", "patch-int"),))
    assert (patch_int.type, patch_int.options) == ("patch", (("peer", "patch-tun"),))
    assert patch_tun.managed and patch_int.managed


def test_config_names_and_datapath_are_used(cloud):
    config = DesiredConfig(integration_bridge="dvr-int", tunnel_bridge="dvr-tun",
                           datapath_type="system", int_peer_patch_port="int-to-tun",
                           tun_peer_patch_port="tun-to-int")
    state = host_state(cloud, HOST_1, config=config)
    assert [b.name for b in state.bridges] == ["dvr-int", "dvr-tun"]
    assert all(b.datapath_type == "system" for b in state.bridges)
    assert any(f.match == Match(in_port="tun-to-int") for f in flows(state, "dvr-tun", table=0))
    assert any(f.match.in_port == "int-to-tun" for f in flows(state, "dvr-int", table=0))
    assert {link.bridge for ns in state.namespaces for link in ns.links} == {"dvr-int"}


def test_ports_sorted_by_name(cloud):
    state = host_state(cloud, HOST_2)
    for b in state.bridges:
        assert [p.name for p in b.ports] == sorted(p.name for p in b.ports)


# --- host MACs ----------------------------------------------------------------------------------


def test_host_mac_flows_for_every_other_host(cloud):
    state = host_state(cloud, HOST_1)
    for host, mac in ((HOST_2, HOST_MAC_2), (HOST_3, HOST_MAC_3)):
        owner = f"hostmac:{host}"
        assert as_text(flows(state, "br-tun", owner=owner)) == {
            (9, 1, f"dl_src={mac}", f"output:{PATCH_INT}")
        }
        assert as_text(flows(state, "br-int", owner=owner)) == {
            (0, 2, f"in_port={PATCH_TUN},dl_src={mac}", "resubmit(,1)")
        }
    assert not flows(state, "br-tun", owner=f"hostmac:{HOST_1}")
    assert HOST_MAC_1 not in str(flows(state, "br-int", table=0))


def test_own_host_mac_listed_as_peer_is_ignored(cloud):
    view = cloud.view(HOST_1)
    view = replace(view, peer_host_macs=view.peer_host_macs + (HostMac("zzz", HOST_MAC_1),))
    assert state_of(view, cloud.plugged(HOST_1)) == host_state(cloud, HOST_1)


def test_removing_a_host_mac_removes_exactly_its_two_flows(cloud):
    before = host_state(cloud, HOST_1)
    view = cloud.view(HOST_1)
    view = replace(view, peer_host_macs=tuple(m for m in view.peer_host_macs if m.host != HOST_3))
    after = state_of(view, cloud.plugged(HOST_1))
    for name in ("br-int", "br-tun"):
        gone = bridge(before, name).flows - bridge(after, name).flows
        assert {f.owner for f in gone} == {f"hostmac:{HOST_3}"}
        assert not bridge(after, name).flows - bridge(before, name).flows
    assert len(bridge(before, "br-tun").flows) - len(bridge(after, "br-tun").flows) == 1


def test_legacy_mode_has_no_dvr_flows(cloud):
    state = host_state(cloud, HOST_1, config=DesiredConfig(agent_mode="legacy"))
    owners = {f.owner.split(":")[0] for b in state.bridges for f in b.flows
              if not is_zone_flow(f)}
    assert "hostmac" not in owners and "subnet" not in owners and "port" not in owners
    assert "network" in owners  # L2 tunnels still work


# --- DVR subnets (br-tun table 1) ---------------------------------------------------------------


def test_dvr_subnet_flows_for_each_local_interface(cloud):
    state = host_state(cloud, HOST_1)
    for subnet, network, gateway_mac in ((BLUE_SUBNET, BLUE, IF_BLUE_MAC),
                                         (ORANGE_SUBNET, ORANGE, IF_ORANGE_MAC)):
        lv = vlan(state, network)
        gateway_ip = cloud.net(network).gateway_ip
        assert as_text(flows(state, "br-tun", owner=f"subnet:{subnet}")) == {
            (1, 3, f"arp,dl_vlan={lv},arp_tpa={gateway_ip}", "drop"),
            (1, 2, f"dl_vlan={lv},dl_dst={gateway_mac}", "drop"),
            (1, 1, f"dl_vlan={lv},dl_src={gateway_mac}",
             f"mod_dl_src:{HOST_MAC_1},resubmit(,2)"),
        }


def test_each_host_rewrites_to_its_own_host_mac(cloud):
    for host, mac in ((HOST_1, HOST_MAC_1), (HOST_2, HOST_MAC_2), (HOST_3, HOST_MAC_3)):
        rewrites = {f.actions for f in flows(host_state(cloud, host), "br-tun", table=1)
                    if isinstance(f.actions[0], ModDlSrc)}
        assert rewrites == {(ModDlSrc(mac), Resubmit(2))}


def test_without_host_mac_routed_frames_are_dropped_not_leaked(cloud):
    view = replace(cloud.view(HOST_1), host_mac=None)
    state = state_of(view, cloud.plugged(HOST_1))
    rewrite = {f for f in flows(state, "br-tun", table=1) if f.match.dl_src is not None}
    assert rewrite and all(f.actions == (DROP,) for f in rewrite)


def test_centralized_router_gets_namespace_but_no_dvr_flows(cloud):
    view = cloud.view(HOST_1)
    router = replace(view.router(ROUTER), distributed=False)
    state = state_of(with_router(view, router), cloud.plugged(HOST_1))
    assert not flows(state, "br-tun", table=1) - flows(state, "br-tun", owner="bridge:br-tun")
    assert not flows(state, "br-int", table=1) - flows(state, "br-int", owner="bridge:br-int")
    assert state.namespace(f"qrouter-{ROUTER}") is not None


def test_admin_down_router_is_not_instantiated(cloud):
    view = cloud.view(HOST_1)
    state = state_of(with_router(view, replace(view.router(ROUTER), admin_state_up=False)),
                     cloud.plugged(HOST_1))
    assert state.namespaces == ()
    assert not any(f.owner.startswith(("subnet:", "port:")) for b in state.bridges
                   for f in b.flows if not is_zone_flow(f))
    assert not any(p.name.startswith("qrb-") for p in bridge(state, "br-int").ports)


def test_ipv6_interface_drops_neighbor_solicitations_for_gateway(cloud):
    view = cloud.view(HOST_1)
    router = view.router(ROUTER)
    v6 = RouterInterfaceView(port_id="6e6e6e6e-0000-0000-0000-000000000006",
                             subnet_id="sub-blue-v6", network_id=BLUE,
                             mac_address="fa:16:3e:aa:00:06", ip_address="2001:db8::1",
                             cidr="2001:db8::/64", mtu=1450)
    state = state_of(with_router(view, replace(router, interfaces=router.interfaces + (v6,))),
                     cloud.plugged(HOST_1))
    lv = vlan(state, BLUE)
    assert (1, 3, f"icmp6,dl_vlan={lv},icmp_type=135,nd_target=2001:db8::1", "drop") in as_text(
        flows(state, "br-tun", owner="subnet:sub-blue-v6"))
    namespace = state.namespace(f"qrouter-{ROUTER}")
    assert ("net.ipv6.conf.all.forwarding", "1") in namespace.sysctls


def test_interface_on_untunnelled_network_gets_no_br_tun_flows(cloud):
    view = cloud.view(HOST_1)
    networks = tuple(replace(n, network_type="vlan") if n.id == ORANGE else n
                     for n in view.networks)
    state = state_of(replace(view, networks=networks), cloud.plugged(HOST_1))
    assert not flows(state, "br-tun", owner=f"subnet:{ORANGE_SUBNET}")
    assert not flows(state, "br-tun", owner=f"network:{ORANGE}")
    assert flows(state, "br-tun", owner=f"subnet:{BLUE_SUBNET}")


# --- local VM ports (br-int table 1, VIF tags) ---------------------------------------------------


def test_local_vm_on_dvr_subnet_gets_gateway_mac_restore_flow(cloud):
    state = host_state(cloud, HOST_2)
    for vm_id, network, gateway_mac in ((ORANGE_1, ORANGE, IF_ORANGE_MAC),
                                        (BLUE_2, BLUE, IF_BLUE_MAC)):
        lv = vlan(state, network)
        assert as_text(flows(state, "br-int", table=1, owner=f"port:{vm_id}")) == {
            (1, 4, f"dl_vlan={lv},dl_dst={cloud.vm(vm_id).mac}",
             f"strip_vlan,mod_dl_src:{gateway_mac},output:{port_text(tap_name(vm_id))}")
        }


def test_vif_ports_are_unmanaged_and_tagged_with_their_local_vlan(cloud):
    state = host_state(cloud, HOST_2)
    ports = {p.name: p for p in bridge(state, "br-int").ports}
    for vm_id, network in ((ORANGE_1, ORANGE), (BLUE_2, BLUE)):
        port = ports[tap_name(vm_id)]
        assert port.tag == vlan(state, network)
        assert not port.managed


def test_vm_on_network_without_router_gets_tag_but_no_dvr_flow(cloud):
    state = host_state(cloud, HOST_3)
    assert not flows(state, "br-int", table=1, owner=f"port:{GREEN_1}")
    port = next(p for p in bridge(state, "br-int").ports if p.name == tap_name(GREEN_1))
    assert port.tag == vlan(state, cloud.vm(GREEN_1).network_id)


def test_unplugged_port_gets_nothing(cloud):
    state = state_of(cloud.view(HOST_2), {})
    assert not any(p.name.startswith("tap") for p in bridge(state, "br-int").ports)
    assert not any(f.owner.startswith("port:") for f in bridge(state, "br-int").flows)


def test_admin_down_port_is_dead_and_has_no_flow(cloud):
    vm = cloud.vm(ORANGE_1)
    down = cloud.with_vm(replace(vm, admin_state_up=False))
    state = host_state(down, HOST_2)
    port = next(p for p in bridge(state, "br-int").ports if p.name == tap_name(ORANGE_1))
    assert port.tag == DEAD_VLAN
    assert not flows(state, "br-int", owner=f"port:{ORANGE_1}")


def test_port_of_unknown_network_is_dead(cloud):
    view = cloud.view(HOST_2)
    view = replace(view, ports=tuple(replace(p, network_id="nowhere") if p.id == ORANGE_1 else p
                                     for p in view.ports))
    state = state_of(view, cloud.plugged(HOST_2))
    port = next(p for p in bridge(state, "br-int").ports if p.name == tap_name(ORANGE_1))
    assert port.tag == DEAD_VLAN


def test_orphan_vif_is_parked_on_the_dead_vlan(cloud):
    plugged = {**cloud.plugged(HOST_2), "gone-port-id": "tapgone"}
    state = state_of(cloud.view(HOST_2), plugged)
    port = next(p for p in bridge(state, "br-int").ports if p.name == "tapgone")
    assert port.tag == DEAD_VLAN and not port.managed
    assert not any(f.owner == "port:gone-port-id" for f in bridge(state, "br-int").flows)


def test_agent_ports_found_by_iface_id_are_never_vifs(cloud):
    """The qrb- veth ends carry iface-id too: an observer may report them as plugged."""
    plugged = {**cloud.plugged(HOST_2), IF_ORANGE: router_interface_bridge_port_name(IF_ORANGE),
               "x": "vxlan-c633640b", "y": "patch-tun"}
    assert state_of(cloud.view(HOST_2), plugged) == host_state(cloud, HOST_2)


def test_agent_owned_device_owners_are_never_vifs(cloud):
    view = cloud.view(HOST_2)
    view = replace(view, ports=tuple(replace(p, device_owner=OWNER_ROUTER_SNAT)
                                     if p.id == ORANGE_1 else p for p in view.ports))
    state = state_of(view, cloud.plugged(HOST_2))
    assert tap_name(ORANGE_1) not in {p.name for p in bridge(state, "br-int").ports}


def test_two_routers_on_one_subnet_lowest_interface_port_id_wins(cloud):
    other = "0000aaaa-0000-0000-0000-00000000000a"  # sorts before IF_ORANGE
    view = cloud.view(HOST_2)
    router = view.router(ROUTER)
    second_if = replace(next(i for i in router.interfaces if i.subnet_id == ORANGE_SUBNET),
                        port_id=other, mac_address="fa:16:3e:bb:00:0a")
    second = replace(router, id="rtr-second", name="second", interfaces=(second_if,),
                     arp_entries=())
    view = replace(view, routers=view.routers + (second,))
    state = state_of(view, cloud.plugged(HOST_2))
    (flow,) = flows(state, "br-int", table=1, owner=f"port:{ORANGE_1}")
    assert ModDlSrc("fa:16:3e:bb:00:0a") in flow.actions
    # both gateways are local: both are hidden from the tunnel
    subnet_flows = flows(state, "br-tun", owner=f"subnet:{ORANGE_SUBNET}")
    assert {f.match for f in subnet_flows if f.priority == 2} == {
        Match(dl_vlan=vlan(state, ORANGE), dl_dst="fa:16:3e:bb:00:0a"),
        Match(dl_vlan=vlan(state, ORANGE), dl_dst=IF_ORANGE_MAC),
    }
    # the shared ARP drop is one flow, and stays while either router remains
    assert len([f for f in subnet_flows if f.priority == 3]) == 1


# --- tunnels and L2 population -------------------------------------------------------------------


def test_one_vxlan_port_per_remote_endpoint(cloud):
    state = host_state(cloud, HOST_1)
    tunnels = {p.name: p for p in bridge(state, "br-tun").ports if p.type == "vxlan"}
    assert set(tunnels) == {vxlan_port_name(TUNNEL_IP_2), vxlan_port_name(TUNNEL_IP_3)}
    port = tunnels[vxlan_port_name(TUNNEL_IP_2)]
    assert dict(port.options) == {"remote_ip": TUNNEL_IP_2, "local_ip": TUNNEL_IP_1,
                                  "key": "flow", "in_key": "flow", "out_key": "flow"}
    assert as_text(flows(state, "br-tun", owner=f"tunnel:{TUNNEL_IP_2}")) == {
        (0, 1, f"in_port={port_text(vxlan_port_name(TUNNEL_IP_2))}", "resubmit(,4)")
    }


def test_tunnel_to_local_vlan(cloud):
    state = host_state(cloud, HOST_1)
    table4 = {(f.match, f.actions) for f in flows(state, "br-tun", table=4) if f.priority == 1}
    assert table4 == {
        (Match(tun_id=BLUE_VNI), (ModVlanVid(vlan(state, BLUE)), Resubmit(9))),
        (Match(tun_id=ORANGE_VNI), (ModVlanVid(vlan(state, ORANGE)), Resubmit(9))),
    }


def test_l2pop_unicast_and_flood_flows(cloud):
    state = host_state(cloud, HOST_1)
    lv = vlan(state, BLUE)
    owner = f"network:{BLUE}"
    unicast = as_text({f for f in flows(state, "br-tun", table=20, owner=owner)})
    assert unicast == {
        (20, 2, f"dl_vlan={lv},dl_dst={cloud.vm(BLUE_2).mac}",
         f"strip_vlan,set_tunnel:{BLUE_VNI:#x},output:{port_text(vxlan_port_name(TUNNEL_IP_2))}"),
        (20, 2, f"dl_vlan={lv},dl_dst={cloud.vm('b3000000-0000-0000-0000-000000000003').mac}",
         f"strip_vlan,set_tunnel:{BLUE_VNI:#x},output:{port_text(vxlan_port_name(TUNNEL_IP_3))}"),
    }
    (flood,) = flows(state, "br-tun", table=22, owner=owner)
    assert flood.match == Match(dl_vlan=lv)
    assert flood.actions == (STRIP_VLAN, SetTunnel(BLUE_VNI), Output(vxlan_port_name(TUNNEL_IP_2)),
                             Output(vxlan_port_name(TUNNEL_IP_3)))


def test_network_without_remote_hosts_has_no_flood_or_unicast(cloud):
    state = host_state(cloud, HOST_3)
    green = cloud.vm(GREEN_1).network_id
    assert {f.table for f in flows(state, "br-tun", owner=f"network:{green}")} == {4}


def test_duplicate_remote_mac_first_host_wins(cloud):
    view = cloud.view(HOST_1)
    blue = view.network(BLUE)
    dup_mac = cloud.vm(BLUE_2).mac
    extra = RemoteHost("compute-9", "198.51.100.19", (L2Entry(dup_mac, ("203.0.113.40",)),))
    view = replace(view, networks=tuple(
        replace(n, remote_hosts=n.remote_hosts + (extra,)) if n.id == BLUE else n
        for n in view.networks))
    assert blue is not None
    state = state_of(view, cloud.plugged(HOST_1))
    matching = [f for f in flows(state, "br-tun", table=20) if f.match.dl_dst == dup_mac]
    assert len(matching) == 1 and Output(vxlan_port_name(TUNNEL_IP_2)) in matching[0].actions
    (flood,) = flows(state, "br-tun", table=22, owner=f"network:{BLUE}")
    assert Output(vxlan_port_name("198.51.100.19")) in flood.actions


def test_invalid_and_own_tunnel_endpoints_are_ignored(cloud):
    view = cloud.view(HOST_1)
    bogus = (RemoteHost("me-again", TUNNEL_IP_1, ()), RemoteHost("broken", "not-an-ip", ()),
             RemoteHost("v6", "2001:db8::9", ()), RemoteHost(HOST_1, "198.51.100.77", ()))
    view = replace(view, networks=tuple(replace(n, remote_hosts=n.remote_hosts + bogus)
                                        for n in view.networks))
    assert state_of(view, cloud.plugged(HOST_1)) == host_state(cloud, HOST_1)


def test_without_local_tunnel_ip_there_are_no_tunnels(cloud):
    state = state_of(replace(cloud.view(HOST_1), tunnel_ip=None), cloud.plugged(HOST_1))
    assert not any(p.type == "vxlan" for p in bridge(state, "br-tun").ports)
    assert not flows(state, "br-tun", table=20) - flows(state, "br-tun", owner="bridge:br-tun")
    assert not flows(state, "br-tun", table=22) - flows(state, "br-tun", owner="bridge:br-tun")


# --- invariants over every host -------------------------------------------------------------------

@pytest.mark.parametrize("host", [HOST_1, HOST_2, HOST_3])
def test_every_referenced_port_is_a_desired_port_of_that_bridge(cloud, host):
    state = host_state(cloud, host)
    for b in state.bridges:
        names = {p.name for p in b.ports}
        for flow in b.flows:
            assert flow.ports <= names, (b.name, flow)
            assert flow.ports == {a.port for a in flow.actions if isinstance(a, Output)} | (
                {flow.match.in_port} - {None})


@pytest.mark.parametrize("host", [HOST_1, HOST_2, HOST_3])
def test_cookies_are_unique_and_name_their_owner(cloud, host):
    state = host_state(cloud, host)
    for b in state.bridges:
        cookies = [f.cookie for f in b.flows]
        assert len(cookies) == len(set(cookies))
        for flow in b.flows:
            assert flow.cookie & OWNER_COOKIE_MASK == owner_cookie_prefix(flow.owner)


@pytest.mark.parametrize("host", [HOST_1, HOST_2, HOST_3])
def test_no_two_flows_share_table_priority_and_match(cloud, host):
    state = host_state(cloud, host)
    for b in state.bridges:
        keys = [(f.table, f.priority, f.match) for f in b.flows]
        assert len(keys) == len(set(keys)), b.name


def test_computation_is_deterministic(cloud):
    assert host_state(cloud, HOST_2) == host_state(cloud, HOST_2)
    assert east_west_cloud().view(HOST_2) == cloud.view(HOST_2)


# --- removal is exact -------------------------------------------------------------------------


def test_removing_a_router_interface_removes_exactly_its_flows_devices_and_neighbors(cloud):
    view = cloud.view(HOST_2)
    router = view.router(ROUTER)
    before = state_of(view, cloud.plugged(HOST_2))
    trimmed = replace(router, interfaces=tuple(i for i in router.interfaces
                                               if i.port_id != IF_ORANGE),
                      arp_entries=tuple(a for a in router.arp_entries
                                        if a.subnet_id != ORANGE_SUBNET))
    after = state_of(with_router(view, trimmed), cloud.plugged(HOST_2))

    for name in ("br-int", "br-tun"):
        assert not bridge(after, name).flows - bridge(before, name).flows
    gone = {f.owner for name in ("br-int", "br-tun")
            for f in bridge(before, name).flows - bridge(after, name).flows}
    # the subnet's flows, the VM's table-1 flow, the zone flow of the router's qr- port;
    # one interface left: nothing to route between in br-int
    assert gone == {f"subnet:{ORANGE_SUBNET}", f"port:{ORANGE_1}", f"router:{ROUTER}",
                    f"fastpath:{ROUTER}"}
    assert not flows(after, "br-int", owner=f"fastpath:{ROUTER}")
    assert len(flows(before, "br-tun", owner=f"subnet:{ORANGE_SUBNET}")) == 3

    ports_before = set(bridge(before, "br-int").ports)
    ports_after = set(bridge(after, "br-int").ports)
    assert {p.name for p in ports_before - ports_after} == {
        router_interface_bridge_port_name(IF_ORANGE)}
    assert ports_after <= ports_before

    ns_before = before.namespace(f"qrouter-{ROUTER}")
    ns_after = after.namespace(f"qrouter-{ROUTER}")
    device = router_interface_device_name(IF_ORANGE)
    assert {link.name for link in set(ns_before.links) - set(ns_after.links)} == {device}
    assert {a.device for a in set(ns_before.addresses) - set(ns_after.addresses)} == {device}
    assert {n.device for n in set(ns_before.neighbors) - set(ns_after.neighbors)} == {device}
    assert set(ns_after.links) <= set(ns_before.links)
    assert set(ns_after.neighbors) <= set(ns_before.neighbors)
    assert before.local_vlans == after.local_vlans


def test_removing_a_vm_removes_only_its_port_flow_tag_and_l2pop_elsewhere(cloud):
    before1, before2 = host_state(cloud, HOST_1), host_state(cloud, HOST_2)
    removed = cloud.without_vm(BLUE_2)
    after1, after2 = host_state(removed, HOST_1), host_state(removed, HOST_2)
    gone2 = {f.owner for b in ("br-int", "br-tun")
             for f in bridge(before2, b).flows - bridge(after2, b).flows}
    assert gone2 == {f"port:{BLUE_2}", f"fastpath:{ROUTER}"}
    # the fast path loses blue-2 as a source and as a destination, nothing else
    fast_gone = {(f.table, f.match.in_port, f.match.nw_dst) for f in
                 flows(before2, "br-int", owner=f"fastpath:{ROUTER}")
                 - flows(after2, "br-int", owner=f"fastpath:{ROUTER}")}
    assert fast_gone == {(60, tap_name(BLUE_2), None), (65, None, cloud.vm(BLUE_2).ip)}
    assert not (flows(after2, "br-int", owner=f"fastpath:{ROUTER}")
                - flows(before2, "br-int", owner=f"fastpath:{ROUTER}"))
    assert tap_name(BLUE_2) not in {p.name for p in bridge(after2, "br-int").ports}
    # host 1 loses exactly the unicast entry for blue-2's MAC
    gone1 = bridge(before1, "br-tun").flows - bridge(after1, "br-tun").flows
    assert [(f.table, f.owner) for f in gone1] == [(20, f"network:{BLUE}")]
    assert next(iter(gone1)).match.dl_dst == cloud.vm(BLUE_2).mac
    assert not bridge(after1, "br-tun").flows - bridge(before1, "br-tun").flows


def test_state_helpers(cloud):
    state = host_state(cloud, HOST_2)
    assert state.local_vlan(BLUE) == vlan(state, BLUE)
    assert state.local_vlan("nope") is None
    br_int = bridge(state, "br-int")
    assert br_int.port(tap_name(BLUE_2)).tag == vlan(state, BLUE)
    assert br_int.port("nope") is None
    assert br_int.flows_owned_by(f"port:{BLUE_2}") == flows(state, "br-int", owner=f"port:{BLUE_2}")
