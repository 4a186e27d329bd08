"""North/south tracer inputs: ``east_west_cloud()`` plus a SNAT host and the external network,
with the SNAT/FIP plumbing hand-built in the shape the agent's desired state gives it
(``NamespaceState`` docstring in ``dvr.agent.desired.state``; DVR.md §8-§9).

- network-1 (the SNAT host) holds the SNAT port of blue (a port of the blue network there,
  so the server's rules give it the blue network, L2 population and table-1 flows) and the
  router's ``snat-`` namespace (``sg-`` on blue, ``qg-`` on the external network, default
  route via the outside router, SNAT to the gateway IP);
- every host of the router has, in ``qrouter-``, the rule ``from <blue> lookup T`` with
  ``default via <SNAT port IP>`` in table T;
- network-1 and compute-2 have ``br-ex`` (``int-br-ex``/``phy-br-ex``, flat network on
  local VLAN ``EXT_VLAN``) and its uplink;
- ``with_floating_ip`` adds orange-1's floating IP on compute-2: the ``fip-`` namespace
  (``fg-``, proxy ARP, ``fpr-``, the /32 route), the ``rfp-`` peer link, rule, table 16 and
  NAT in ``qrouter-``.

``agent_cloud``/``agent_hosts`` give the same cloud with everything computed by the
agent's own pure functions (the scenario ``Cloud``'s gateways, floating IPs and legacy
routers), so the tracer is also tested against the real shape, not only the hand-built one.
"""

from __future__ import annotations

from dataclasses import replace

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.names import (
    fip_namespace_name,
    router_interface_device_name,
    router_namespace_name,
    snat_namespace_name,
)
from dvr.agent.desired.openflow import NORMAL, STRIP_VLAN, Drop, Match, ModVlanVid, Resubmit
from dvr.agent.desired.state import (
    Address,
    BridgeState,
    Flow,
    NamespaceState,
    NatRule,
    Neighbor,
    OvsPort,
    PeerLink,
    Route,
    Rule,
    VethLink,
)
from dvr.model.hostview import (
    FixedIp,
    FloatingIpView,
    GatewayView,
    HostView,
    NetworkView,
    SubnetView,
)
from dvr.trace.hosts import HostData
from dvr.trace.steps import ExternalHost
from tests.unit.desired.desired_scenarios import (
    BLUE,
    HOST_1,
    HOST_2,
    IF_BLUE,
    ORANGE_1,
    ROUTER,
    Cloud,
    Host,
    Net,
    Vm,
    east_west_cloud,
    tap_name,
)
from tests.unit.trace.trace_scenarios import FAST_PATH, east_west_hosts

NETWORK_1 = "network-1"
HOST_MAC_N = "fa:16:3f:00:00:09"
TUNNEL_IP_N = "198.51.100.19"
SNAT_BLUE = "5a000000-0000-0000-0000-00000000005a"  # the router's SNAT port on blue
SNAT_BLUE_MAC = "fa:16:3e:00:05:0a"
SNAT_BLUE_IP = "203.0.113.5"
BLUE_CIDR = "203.0.113.0/26"
ORANGE_CIDR = "203.0.113.64/26"
ORANGE_1_IP = "203.0.113.75"

EXT = "net-public-000-0000-0000-000000000009"
EXT_SUBNET = "sub-public-000-0000-0000-000000000009"
EXT_CIDR = "192.0.2.0/24"
EXT_VLAN = 100  # the external network's local VLAN where the agent did not give it one
OUTSIDE = ExternalHost("outside", "192.0.2.1", "02:00:00:00:0e:01")
GATEWAY_PORT = "9a000000-0000-0000-0000-00000000009a"
GATEWAY_MAC = "fa:16:3e:00:09:0a"
GATEWAY_IP = "192.0.2.10"
FG_PORT = "fb000000-0000-0000-0000-0000000000fb"  # compute-2's floating-IP agent gateway
FG_MAC = "fa:16:3e:00:0f:0b"
FG_IP = "192.0.2.30"
FIP = "192.0.2.20"
FIP_ID = "f1000000-0000-0000-0000-0000000000f1"
RFP_IP, FPR_IP = "169.254.64.0", "169.254.64.1"
SNAT_TABLE = 3405803777  # the blue subnet's gateway IP as an integer
FIP_TABLE = 16
FIP_RULE_PRIORITY = 32768
UPLINK = "ext-uplink"

INT_BR_EX, PHY_BR_EX = "int-br-ex", "phy-br-ex"
QG = f"qg-{GATEWAY_PORT[:11]}"
FG = f"fg-{FG_PORT[:11]}"
SG = f"sg-{SNAT_BLUE[:11]}"
RFP, FPR = f"rfp-{ROUTER[:11]}", f"fpr-{ROUTER[:11]}"


def north_south_cloud() -> Cloud:
    cloud = east_west_cloud().with_host(Host(NETWORK_1, TUNNEL_IP_N, HOST_MAC_N))
    return cloud.with_vm(Vm(SNAT_BLUE, BLUE, SNAT_BLUE_MAC, SNAT_BLUE_IP, NETWORK_1,
                            device_owner="compute:snat"))


def external_network() -> NetworkView:
    return NetworkView(id=EXT, name="public", network_type="flat", segmentation_id=None,
                       mtu=1500, external=True, physical_network="public",
                       subnets=(SubnetView(EXT_SUBNET, EXT, EXT_CIDR, OUTSIDE.ip, 4),),
                       remote_hosts=())


def gateway(enable_snat: bool = True) -> GatewayView:
    return GatewayView(port_id=GATEWAY_PORT, network_id=EXT, mac_address=GATEWAY_MAC,
                       fixed_ips=(FixedIp(EXT_SUBNET, GATEWAY_IP),),
                       subnets=external_network().subnets, enable_snat=enable_snat)


def with_gateway(view: HostView, floating: bool = False) -> HostView:
    fips = ((FloatingIpView(FIP_ID, FIP, EXT, ORANGE_1_IP, ORANGE_1,
                            HOST_2),) if floating and view.host == HOST_2 else ())
    routers = tuple(replace(r, gateway=gateway(), snat_host=NETWORK_1, floating_ips=fips)
                    for r in view.routers)
    return replace(view, routers=routers, networks=tuple(sorted(
        view.networks + (external_network(),), key=lambda n: n.id)))


# --- hand-built pieces --------------------------------------------------------------------------


def ext_vlan(data: HostData) -> int:
    """The external network's local VLAN on the host."""
    vlan = data.state.local_vlan(EXT)
    return EXT_VLAN if vlan is None else vlan


def external_bridge(vlan: int) -> BridgeState:
    owner = "bridge:br-ex"
    flows = frozenset({
        Flow(0, 0, Match(), (NORMAL,), owner),
        Flow(0, 2, Match(in_port=PHY_BR_EX), (Drop(),), owner),
        Flow(0, 4, Match(in_port=PHY_BR_EX, dl_vlan=vlan), (STRIP_VLAN, NORMAL),
             f"network:{EXT}"),
    })
    port = OvsPort(PHY_BR_EX, "patch", (("peer", INT_BR_EX),))
    return BridgeState("br-ex", (port,), flows)


def with_external_bridge(data: HostData, links: tuple[VethLink, ...]) -> HostData:
    """br-ex, the patch pair and br-int's inbound translation; ``links``' bridge ends."""
    state = data.state
    vlan = ext_vlan(data)
    integration = state.bridge("br-int")
    assert integration is not None
    ports = integration.ports + (OvsPort(INT_BR_EX, "patch", (("peer", PHY_BR_EX),)),) + tuple(
        OvsPort(link.peer, tag=link.tag) for link in links)
    flows = integration.flows | {
        Flow(0, 2, Match(in_port=INT_BR_EX), (Drop(),), "bridge:br-ex"),
        Flow(0, 3, Match(in_port=INT_BR_EX, vlan_tci=0, vlan_tci_mask=0x1FFF),
             (ModVlanVid(vlan), Resubmit(60)), f"network:{EXT}"),
    }
    integration = replace(integration, ports=tuple(sorted(ports)), flows=flows)
    bridges = tuple(b if b.name != "br-int" else integration for b in state.bridges)
    vlans = state.local_vlans
    if state.local_vlan(EXT) is None:
        vlans = tuple(sorted(vlans + ((EXT, vlan),)))
    state = replace(state, bridges=bridges + (external_bridge(vlan),), local_vlans=vlans)
    return data._replace(state=state, uplinks={"br-ex": UPLINK})


def add_namespaces(data: HostData, *namespaces: NamespaceState) -> HostData:
    state = data.state
    names = {n.name for n in namespaces}
    kept = tuple(n for n in state.namespaces if n.name not in names)
    return data._replace(state=replace(state, namespaces=tuple(
        sorted(kept + namespaces, key=lambda n: n.name))))


def with_snat_rule(data: HostData) -> HostData:
    """``from <blue> lookup T`` and ``default via <SNAT port>`` in ``qrouter-``."""
    namespace = data.state.namespace(router_namespace_name(ROUTER))
    assert namespace is not None
    qr_blue = router_interface_device_name(IF_BLUE)
    namespace = replace(
        namespace,
        rules=tuple(sorted(namespace.rules + (Rule(SNAT_TABLE, SNAT_TABLE, BLUE_CIDR),))),
        routes=tuple(sorted(namespace.routes + (
            Route("default", qr_blue, SNAT_BLUE_IP, SNAT_TABLE),))))
    return add_namespaces(data, namespace)


def snat_namespace(data: HostData, enable_snat: bool = True) -> NamespaceState:
    blue_vlan = data.state.local_vlan(BLUE)
    router_ns = data.state.namespace(router_namespace_name(ROUTER))
    assert router_ns is not None and blue_vlan is not None
    qr_blue = router_interface_device_name(IF_BLUE)
    neighbors = tuple(Neighbor(SG, n.ip_address, n.mac_address)
                      for n in router_ns.neighbors if n.device == qr_blue)
    nat = ((NatRule("postrouting", f"snat:{ROUTER}", oif=QG, snat_to=GATEWAY_IP),)
           if enable_snat else ())
    return NamespaceState(
        name=snat_namespace_name(ROUTER), owner=f"snat:{ROUTER}",
        links=(VethLink(QG, f"qgb-{GATEWAY_PORT[:11]}", "br-int", GATEWAY_MAC, 1500,
                        ext_vlan(data)),
               VethLink(SG, tap_name(SNAT_BLUE), "br-int", SNAT_BLUE_MAC, 1450, blue_vlan)),
        addresses=(Address(QG, f"{GATEWAY_IP}/24"), Address(SG, f"{SNAT_BLUE_IP}/26")),
        routes=(Route("default", QG, OUTSIDE.ip),),
        neighbors=neighbors, nat=nat,
    )


def north_south_hosts(enable_snat: bool = True, gateway_on: bool = True,
                      floating: bool = False,
                      config: DesiredConfig = FAST_PATH) -> dict[str, HostData]:
    cloud = north_south_cloud()
    edits = ({h.name: (lambda v: with_gateway(v, floating)) for h in cloud.hosts}
             if gateway_on else {})
    hosts = east_west_hosts(cloud, edits, config)
    if not gateway_on:
        return hosts
    network = hosts[NETWORK_1]
    network = with_external_bridge(network, snat_namespace(network).links[:1])
    hosts[NETWORK_1] = add_namespaces(network, snat_namespace(network, enable_snat))
    for name in (HOST_1, HOST_2, NETWORK_1):
        hosts[name] = with_snat_rule(hosts[name])
    if floating:
        hosts[HOST_2] = with_floating_ip(hosts[HOST_2])
    return hosts


def with_floating_ip(data: HostData) -> HostData:
    """orange-1's floating IP on compute-2: ``fip-``, the ``rfp-``/``fpr-`` pair, rule,
    table 16 and NAT in ``qrouter-``."""
    fip_name = fip_namespace_name(EXT)
    fg = VethLink(FG, f"fgb-{FG_PORT[:11]}", "br-int", FG_MAC, 1500, ext_vlan(data))
    data = with_external_bridge(data, (fg,))
    fip_ns = NamespaceState(
        name=fip_name, owner=f"fip:{EXT}", links=(fg,),
        addresses=(Address(FG, f"{FG_IP}/24"), Address(FPR, f"{FPR_IP}/31")),
        routes=(Route("default", FG, OUTSIDE.ip), Route(f"{FIP}/32", FPR, RFP_IP)),
        sysctls=(("net.ipv4.ip_forward", "1"), (f"net.ipv4.conf.{FG}.proxy_arp", "1")),
    )
    router_ns = data.state.namespace(router_namespace_name(ROUTER))
    assert router_ns is not None
    owner = f"fip:{FIP_ID}"
    router_ns = replace(
        router_ns,
        peer_links=(PeerLink(RFP, FPR, fip_name),),
        addresses=tuple(sorted(router_ns.addresses + (Address(RFP, f"{RFP_IP}/31"),))),
        rules=tuple(sorted(router_ns.rules + (
            Rule(FIP_RULE_PRIORITY, FIP_TABLE, f"{ORANGE_1_IP}/32"),))),
        routes=tuple(sorted(router_ns.routes + (Route("default", RFP, FPR_IP, FIP_TABLE),))),
        nat=(NatRule("prerouting", owner, iif=RFP, daddr=FIP, dnat_to=ORANGE_1_IP),
             NatRule("postrouting", owner, oif=RFP, saddr=ORANGE_1_IP, snat_to=FIP)),
    )
    return add_namespaces(data, fip_ns, router_ns)



# --- the same cloud with the plumbing computed by the agent's own functions ----------------------

BRIDGE_MAPPINGS = (("public", "br-ex"),)


def agent_cloud(distributed: bool = True, floating: bool = True) -> Cloud:
    """``east_west_cloud()`` plus network-1 (dvr_snat), the flat external network and R's
    gateway (SNAT on network-1); orange-1's floating IP when ``floating``; R legacy
    (hosted on network-1 only) when not ``distributed``."""
    base = east_west_cloud().with_host(Host(NETWORK_1, TUNNEL_IP_N, HOST_MAC_N))
    router = replace(base.routers[0], distributed=distributed, gateway_ip=GATEWAY_IP,
                     snat_host=NETWORK_1, fips=((FIP, ORANGE_1),) if floating else ())
    external = Net(EXT, 0, EXT_SUBNET, EXT_CIDR, mtu=1500, network_type="flat")
    return replace(base, routers=(router,), external=external)


def agent_hosts(cloud: Cloud) -> dict[str, HostData]:
    """Every host's desired state as its agent computes it (br-ex mapped, lab uplinks)."""
    hosts = {}
    for host in cloud.hosts:
        view = cloud.view(host.name)
        mode = "dvr_snat" if host.name == NETWORK_1 else "dvr"
        config = DesiredConfig(agent_mode=mode, bridge_mappings=BRIDGE_MAPPINGS)
        plugged = cloud.plugged(host.name)
        state = compute_desired_state(view, HostInputs(plugged=plugged), config)
        hosts[host.name] = HostData(view, state, plugged, {"br-ex": UPLINK})
    return hosts
