"""Walk a packet across hosts through their desired state (pure: no I/O, no clock).

``trace_packet(hosts, request)`` follows the packet the way DVR forwards it (DVR.md §5,
§8-§9): the source VM's NIC -> br-int of its host -> (routed) the local ``qrouter-``
namespace -> br-int -> br-tun (host-MAC rewrite) -> the VXLAN tunnel -> the receiving
host's br-tun -> br-int -> the destination VM's port; north/south through the router's
policy rules to the SNAT port across the tunnel, the ``snat-`` namespace (SNAT) and its
``qg-`` device, or through ``rfp-``/``fpr-`` to the ``fip-`` namespace and its ``fg-``
device, then br-int -> br-ex -> the external segment (and in from it: proxy ARP on
``fg-``, DNAT in ``qrouter-``); or wherever and why it is dropped.  OpenFlow lookups are
simulated with ``ofsim`` over each host's desired flows (every bridge, br-ex included);
a namespace step follows Linux (``routing``: rules, tables, connected routes; ``nat``:
prerouting DNAT, postrouting SNAT, conntrack for replies; ``stations``: PERMANENT
neighbours, else who answers ARP).  Once delivered, the answer is traced back the same way.

``hosts`` may be lazy (a Mapping that loads a host on first access): the walk only reads
the hosts the packet visits, plus every host when it must search for an endpoint, a
tunnel IP or a station on a segment without a hint.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace

from dvr.agent.desired.firewall_explain import (
    FIREWALL_TABLES,
    RuleIndex,
    explain_firewall_flow,
)
from dvr.agent.desired.names import ROUTER_INTERFACE_PREFIX, ROUTER_NS_PREFIX
from dvr.agent.desired.openflow import Ct
from dvr.agent.desired.state import Flow, NamespaceState, NatRule, Neighbor
from dvr.agent.desired.tables import TunTable
from dvr.model.hostview import SubnetView
from dvr.trace import nat, ofsim
from dvr.trace.endpoints import (
    first_packet,
    resolve_destination,
    resolve_source,
    subnet_of,
)
from dvr.trace.hosts import HostData, HostSwitch, bridge_links, namespace_link
from dvr.trace.routing import find_neighbor, local_address, lookup_route
from dvr.trace.stations import (
    Station,
    assumed_station,
    external_station,
    external_subnet_of,
    namespace_station,
    placeholder_mac,
    port_station,
)
from dvr.trace.steps import (
    DeliveryStep,
    DropStep,
    Endpoint,
    ExternalHost,
    NamespaceStep,
    OpenFlowStep,
    PacketView,
    SegmentStep,
    SendStep,
    Step,
    Trace,
    TraceRequest,
    TunnelStep,
    Verdict,
)

MAX_HOPS = 16  # switch passes + namespaces + tunnels in one direction (a loop guard)
L2POP_TABLE = TunTable.UCAST_TO_TUN  # br-tun's tables a missing L2-population entry shows in
FLOOD_TABLE = TunTable.FLOOD_TO_TUN


# --- positions of the walk --------------------------------------------------------------------


@dataclass(frozen=True)
class _AtSwitch:
    host: str
    bridge: str
    in_port: str
    packet: PacketView


@dataclass(frozen=True)
class _InNamespace:
    host: str
    namespace: NamespaceState
    device: str  # the device the frame arrived on
    packet: PacketView


@dataclass(frozen=True)
class _OnSegment:
    """The frame left ``host`` through the uplink ``port`` of external bridge ``bridge``."""

    host: str
    bridge: str
    port: str
    packet: PacketView


@dataclass(frozen=True)
class _FromTunnel:
    host: str
    from_host: str
    sender_ip: str
    vni: int
    packet: PacketView


_Position = _AtSwitch | _InNamespace | _FromTunnel | _OnSegment


@dataclass(frozen=True)
class _Done:
    """The walk ended: the last step is a DeliveryStep or a DropStep."""


_DONE = _Done()


# --- the walk -----------------------------------------------------------------------------------


class _Walk:
    """One trace_packet call: compiled hosts are cached here, nothing outlives the call."""

    def __init__(self, hosts: Mapping[str, HostData],
                 external_hosts: tuple[ExternalHost, ...] = (),
                 conntrack: str = ofsim.CT_NEW,
                 labels: Mapping[str, Mapping[int, int]] | None = None) -> None:
        self.hosts = hosts
        self.conntrack = conntrack  # the forward direction's; replies are established
        # host -> zone -> ct_label the firewalls committed (or, tracing an established
        # connection, committed when it was new)
        self.labels: dict[str, dict[int, int]] = {h: dict(z) for h, z in (labels or {}).items()}
        self._rules: dict[str, RuleIndex] = {}
        self._direction = "forward"
        self._switches: dict[str, HostSwitch | str] = {}
        self._passes = 0
        self.connections: list[nat.Connection] = []  # conntrack, across both directions
        # outside hosts on the segments, by MAC (the request's, and those assumed on the way)
        self.stations: dict[str, Station] = {}
        for host in external_hosts:
            station = external_station(host)
            self.stations[station.mac] = station

    def switch(self, host: str) -> HostSwitch | str:
        """The compiled host, or why it cannot be used."""
        if host not in self._switches:
            if host not in self.hosts:
                self._switches[host] = f"no desired state for host {host!r}"
            else:
                try:
                    self._switches[host] = HostSwitch.of(self.hosts[host])
                except (ofsim.UnsupportedFlow, ValueError) as exc:
                    self._switches[host] = f"cannot simulate host {host}'s flows: {exc}"
        return self._switches[host]

    def host_by_tunnel_ip(self, sender: HostSwitch, tunnel_ip: str) -> str | None:
        known = sender.host_by_tunnel_ip(tunnel_ip)
        if known is not None:
            return known
        for name in sorted(self.hosts):
            if self.hosts[name].view.tunnel_ip == tunnel_ip:
                return name
        return None

    # -- one direction -------------------------------------------------------------------------
    def rules(self, switch: HostSwitch) -> RuleIndex:
        if switch.host not in self._rules:
            self._rules[switch.host] = RuleIndex(switch.view)
        return self._rules[switch.host]

    def run(self, direction: str, source: Endpoint, destination: Endpoint,
            packet: PacketView) -> Trace:
        self._direction = direction
        steps: list[Step] = []
        position = self.send(steps, source, destination, packet)
        hops = 0
        while not isinstance(position, _Done):
            hops += 1
            if hops > MAX_HOPS:
                steps.append(DropStep(host=_host_of(position), place="trace",
                                      reason=f"gave up after {MAX_HOPS} hops (a forwarding loop?)"))
                break
            if isinstance(position, _AtSwitch):
                position = self.switch_pass(steps, position, destination)
            elif isinstance(position, _InNamespace):
                position = self.route(steps, position, destination)
            elif isinstance(position, _OnSegment):
                position = self.cross_segment(steps, position, destination)
            else:
                position = self.receive(steps, position, destination)
        return Trace(direction=direction, source=source, destination=destination,  # type: ignore[arg-type]
                     steps=tuple(steps), verdict=verdict_of(steps, destination))

    # -- the source VM ---------------------------------------------------------------------------
    def send(self, steps: list[Step], source: Endpoint, destination: Endpoint,
             packet: PacketView) -> _Position | _Done:
        if source.external:
            return self.send_from_outside(steps, source, destination, packet)
        host = source.host or ""
        switch = self.switch(host)
        if isinstance(switch, str):
            steps.append(DropStep(host=host, place="source host", reason=switch))
            return _DONE
        vif = switch.vif_name(source.port_id or "")
        subnet = subnet_of(switch.data, source.subnet_id or "")
        if subnet is None:
            steps.append(DropStep(host=host, place=f"source VM {source.label()}",
                                  reason=f"subnet {source.subnet_id} of the source port is not "
                                         f"in {host}'s view"))
            return _DONE
        same_subnet = ipaddress.ip_address(packet.nw_dst) in ipaddress.ip_network(subnet.cidr)
        if same_subnet:
            if destination.mac is None:
                steps.append(DropStep(
                    host=host, place=f"source VM {source.label()}",
                    reason=f"no port has IP {destination.ip} on subnet {subnet.cidr}: "
                           "the VM's ARP request gets no answer"))
                return _DONE
            dl_dst = destination.mac
            why = f"same subnet {subnet.cidr}: straight to {destination.label()} ({dl_dst})"
        else:
            hop = self.gateway_hop(switch, source, subnet, packet.nw_dst)
            if isinstance(hop, DropStep):
                steps.append(hop)
                return _DONE
            dl_dst, why = hop
        packet = replace(packet, dl_dst=dl_dst)
        steps.append(SendStep(host=host, port_id=source.port_id or "",
                              device=source.device or "", ovs_port=vif, why=why, packet=packet))
        if not switch.vif_plugged(source.port_id or ""):
            steps.append(DropStep(host=host, place=f"{switch.integration_bridge}",
                                  reason=f"port {source.label()} is not plugged on {host}: no "
                                         f"OVS port {vif} on {switch.integration_bridge}"))
            return _DONE
        return _AtSwitch(host, switch.integration_bridge, vif, packet)

    def central_gateway(self, switch: HostSwitch, subnet: SubnetView) -> Station | None:
        """The interface of a centralized (legacy) router that is ``subnet``'s gateway: from
        L2 population, else from the router's own host."""
        found = port_station(switch.view, subnet.network_id, subnet.gateway_ip or "")
        if found is not None:
            return found
        for name in sorted(self.hosts):
            for router in self.hosts[name].view.routers:
                for interface in router.interfaces:
                    if (not router.distributed and interface.subnet_id == subnet.id
                            and interface.ip_address == subnet.gateway_ip):
                        return Station(mac=interface.mac_address.lower(),
                                       label=f"router {router.name or router.id} on {name}")
        return None

    def gateway_hop(self, switch: HostSwitch, source: Endpoint, subnet: SubnetView,
                    destination_ip: str) -> tuple[str, str] | DropStep:
        """The MAC a VM sends a routed packet to (its gateway's), and why; or the drop."""
        host = switch.host
        if subnet.gateway_ip is None:
            return DropStep(host=host, place=f"source VM {source.label()}",
                            reason=f"subnet {subnet.cidr} has no gateway: "
                                   f"{destination_ip} is unreachable")
        found = switch.gateway_interface(subnet.id, subnet.gateway_ip)
        if found is None:
            remote = self.central_gateway(switch, subnet)
            if remote is not None:  # a centralized (legacy) router, reached over L2
                return remote.mac, (f"routed: to its gateway {subnet.gateway_ip} "
                                    f"({remote.mac}), {remote.label}: a centralized router")
            return DropStep(
                host=host, place=f"{host} (no router)",
                reason=f"no router for subnet {subnet.cidr} is instantiated on {host}: the "
                       f"VM's gateway {subnet.gateway_ip} does not answer here (DVR routes "
                       "on the source host; the router is scheduled to every host with a "
                       "serviceable port on one of its subnets)")
        router, interface = found
        if switch.router_namespace(router.id) is None:
            return DropStep(host=host, place=f"{host} (no router)",
                            reason=f"router {router.name or router.id} is in {host}'s view but "
                                   "its namespace is not (administratively down?)")
        dl_dst = interface.mac_address.lower()
        return dl_dst, (f"routed: to its gateway {subnet.gateway_ip} ({dl_dst}), answered by "
                        f"the local router {router.name or router.id}")

    # -- a pass through one host's switch ----------------------------------------------------------
    def switch_pass(self, steps: list[Step], at: _AtSwitch,
                    destination: Endpoint) -> _Position | _Done:
        switch = self.switch(at.host)
        if isinstance(switch, str):
            steps.append(DropStep(host=at.host, place=at.bridge, reason=switch))
            return _DONE
        conntrack = self.conntrack if self._direction == "forward" else ofsim.CT_REPLY
        try:
            simulated = switch.pipeline.trace(at.bridge, at.in_port, at.packet.to_ofsim(),
                                              self.mac_table(switch), conntrack,
                                              self.labels.get(at.host))
        except (ofsim.AmbiguousMatch, ofsim.SimulationLimit, ofsim.UnsupportedFlow,
                KeyError) as exc:
            steps.append(DropStep(host=at.host, place=at.bridge,
                                  reason=f"cannot simulate: {exc}"))
            return _DONE
        self._passes += 1
        assumed_label = 0
        for label in (self.labels.get(at.host) or {}).values():
            assumed_label |= label
        self.labels[at.host] = dict(simulated.labels)
        flow_steps = openflow_steps(at.host, simulated, at.packet, self._passes,
                                    self.rules(switch), conntrack, switch.integration_bridge,
                                    assumed_label)
        steps.extend(flow_steps)
        return self.after_pass(steps, switch, simulated, flow_steps, destination, at.packet)

    def after_pass(self, steps: list[Step], switch: HostSwitch, simulated: ofsim.Trace,
                   flow_steps: list[OpenFlowStep], destination: Endpoint,
                   packet: PacketView) -> _Position | _Done:
        host = switch.host
        goal_vif = (switch.vif_name(destination.port_id)
                    if destination.port_id and destination.host == host else None)
        for out in simulated.delivered:
            if goal_vif is not None and out.port == goal_vif:
                steps.append(DeliveryStep(
                    host=host, bridge=out.bridge, ovs_port=out.port,
                    port_id=destination.port_id or "", device=destination.device or "",
                    packet=packet.with_ofsim(out.packet)))
                return _DONE
        for out in simulated.delivered:
            found = switch.router_link(out.port)
            if found is not None and found[1].mac_address.lower() == out.packet.dl_dst.lower():
                return _InNamespace(host, found[0], found[1].name, packet.with_ofsim(out.packet))
        for out in simulated.delivered:
            if switch.uplinks.get(out.bridge) == out.port:
                return _OnSegment(host, out.bridge, out.port, packet.with_ofsim(out.packet))
        tunnels = simulated.tunnelled
        chosen = self.choose_tunnel(switch, tunnels, destination)
        if chosen is not None:
            to_host = self.host_by_tunnel_ip(switch, chosen.remote_ip or "")
            inner = packet.with_ofsim(chosen.packet)
            steps.append(TunnelStep(
                from_host=host, to_host=to_host, local_ip=chosen.local_ip or "",
                remote_ip=chosen.remote_ip or "", vni=chosen.tun_id, bridge=chosen.bridge,
                port=chosen.port, packet=replace(inner, tun_id=chosen.tun_id),
                also_flooded_to=tuple(sorted(t.remote_ip or "" for t in tunnels
                                             if t is not chosen))))
            if to_host is None:
                steps.append(DropStep(host=host, place="underlay",
                                      reason=f"no known host has tunnel IP {chosen.remote_ip}"))
                return _DONE
            return _FromTunnel(to_host, host, chosen.local_ip or "", chosen.tun_id, inner)
        steps.append(diagnose_drop(switch, simulated, flow_steps, destination, self,
                                   self.rules(switch)))
        return _DONE

    def choose_tunnel(self, switch: HostSwitch, tunnels: tuple[ofsim.Tunnelled, ...],
                      destination: Endpoint) -> ofsim.Tunnelled | None:
        if not tunnels:
            return None
        frame_to = tunnels[0].packet.dl_dst.lower()
        if (destination.host is not None and destination.host in self.hosts
                and (destination.mac or "").lower() == frame_to):
            target: str | None = destination.host
        elif len(tunnels) == 1:
            return tunnels[0]
        else:
            # bound for another MAC (a router's or an SNAT port's): the copy that reaches the
            # host holding that MAC
            target = self.mac_owner(frame_to) or (
                destination.host if destination.host in self.hosts else None)
        wanted = self.tunnel_ip_of(target) if target is not None else None
        return next((t for t in tunnels if wanted is not None and t.remote_ip == wanted), None)

    def mac_owner(self, mac: str) -> str | None:
        """The host whose namespace device or port has ``mac``."""
        mac = mac.lower()
        for name in sorted(self.hosts):
            data = self.hosts[name]
            if any(p.mac_address.lower() == mac for p in data.view.ports):
                return name
            if any(link.mac_address.lower() == mac for ns in data.state.namespaces
                   for link in bridge_links(ns)):
                return name
        return None

    def tunnel_ip_of(self, host: str) -> str | None:
        data = self.hosts.get(host)
        return None if data is None else data.view.tunnel_ip

    # -- a namespace: NAT, rules, routes, neighbours ----------------------------------------------
    def connection(self, host: str, namespace: str,
                   packet: PacketView) -> nat.Connection | None:
        """The conntrack entry ``packet`` is a reply of, in that namespace."""
        return next((c for c in self.connections if c.host == host
                     and c.namespace == namespace and c.is_reply(packet)), None)

    def route(self, steps: list[Step], at: _InNamespace,
              destination: Endpoint) -> _Position | _Done:
        namespace, arrived, host = at.namespace, at.packet, at.host
        rules: list[NatRule] = []
        notes: list[str] = []
        connection = self.connection(host, namespace.name, arrived)
        if connection is not None:
            packet, note = connection.undo_source_nat(arrived)
            notes += [note] if note else []
        else:
            rule, packet = nat.prerouting(namespace, arrived, at.device)
            rules += [rule] if rule is not None else []
        routed = packet
        own = local_address(namespace, packet.nw_dst)
        if own is not None:
            steps.append(DeliveryStep(host=host, bridge=namespace.name, ovs_port=own.device,
                                      port_id="", device=namespace.name, packet=packet))
            return _DONE
        decision = lookup_route(namespace, packet.nw_src, packet.nw_dst, at.device)
        if decision is None:
            steps.append(DropStep(host=host, place=namespace.name,
                                  reason=self.no_route(host, namespace, packet)))
            return _DONE
        if packet.nw_ttl <= 1:
            steps.append(DropStep(host=host, place=namespace.name,
                                  reason=f"TTL {packet.nw_ttl} expires in {namespace.name}"))
            return _DONE
        device = decision.route.device
        if connection is not None:
            packet, note = connection.undo_destination_nat(packet)
            notes += [note] if note else []
        else:
            rule, packet = nat.postrouting(namespace, packet, at.device, device)
            rules += [rule] if rule is not None else []
            self.connections.append(nat.Connection(
                host, namespace.name, (arrived.nw_src, arrived.nw_dst),
                (packet.nw_src, packet.nw_dst)))
        switch = self.switch(host)
        if isinstance(switch, str) or not switch.has_device(namespace, device):
            steps.append(DropStep(host=host, place=namespace.name,
                                  reason=f"route via {device}, a device {namespace.name} "
                                         "does not have"))
            return _DONE
        link = namespace_link(namespace, device)
        found = self.neighbor(host, namespace, device, decision.nexthop, packet.nw_src)
        if isinstance(found, str):
            why = ("" if destination.port_id is not None or destination.external
                   else f"; no known port has the IP {destination.ip}")
            steps.append(DropStep(host=host, place=f"{namespace.name} {device}",
                                  reason=found + why))
            return _DONE
        neighbor, resolved_by = found
        own_mac = link.mac_address if link is not None else kernel_mac(host, namespace, device)
        out = replace(packet, dl_src=own_mac.lower(), dl_dst=neighbor.mac_address.lower(),
                      dl_vlan=None, nw_ttl=packet.nw_ttl - 1, tun_id=None)
        steps.append(NamespaceStep(
            host=host, namespace=namespace.name, owner=namespace.owner,
            in_device=at.device, out_device=device, rule=decision.rule,
            route=decision.route, nexthop=decision.nexthop, neighbor=neighbor,
            packet_in=arrived, packet=out, nat=tuple(rules), resolved_by=resolved_by,
            conntrack=tuple(notes), routed=routed))
        if link is not None:
            return _AtSwitch(host, link.bridge, link.peer, out)
        peer = switch.namespace_peer(namespace, device)
        assert peer is not None  # has_device
        return _InNamespace(host, peer[0], peer[1], out)

    def no_route(self, host: str, namespace: NamespaceState, packet: PacketView) -> str:
        reason = (f"no route to {packet.nw_dst} in {namespace.name}: no policy rule's table "
                  "and no route of the main table matches it")
        switch = self.switch(host)
        if namespace.name.startswith(ROUTER_NS_PREFIX) and not isinstance(switch, str):
            router = switch.view.router(namespace.name.removeprefix(ROUTER_NS_PREFIX))
            gateway = router.gateway if router is not None else None
            if router is not None and gateway is None:
                reason += (f" (router {router.name or router.id} has no external gateway: "
                           "nothing leaves the tenant networks)")
            elif router is not None and gateway is not None and not gateway.enable_snat:
                reason += (f" (router {router.name or router.id} has SNAT disabled and "
                           f"{packet.nw_src} has no floating IP)")
        return reason

    def neighbor(self, host: str, namespace: NamespaceState, device: str, ip: str,
                 sender: str) -> tuple[Neighbor, str] | str:
        """The next hop's MAC on ``device`` and how it was found, or why there is none."""
        static = find_neighbor(namespace, device, ip)
        if static is not None:
            return static, "PERMANENT"
        switch = self.switch(host)
        if isinstance(switch, str):
            return switch
        peer = switch.namespace_peer(namespace, device)
        if peer is not None:
            peer_ns, peer_device = peer
            if local_address(peer_ns, ip) is None:
                return (f"{peer_device} in {peer_ns.name} (the peer of {device}) does not "
                        f"answer ARP for {ip}")
            return (Neighbor(device, ip, kernel_mac(host, peer_ns, peer_device)),
                    f"ARP: answered by {peer_device} in {peer_ns.name}")
        link = namespace_link(namespace, device)
        if (namespace.name.startswith(ROUTER_NS_PREFIX)
                and device.startswith(ROUTER_INTERFACE_PREFIX)
                and self.distributed(switch, namespace)):
            return (f"no static (PERMANENT) ARP entry for {ip} on {device} in "
                    f"{namespace.name}: DVR never ARPs across the tunnel mesh, the agent "
                    "installs one entry per port of the subnet")
        network = switch.network_of_vlan(link.tag if link is not None else None)
        station = None if network is None else self.station(host, network, ip, sender,
                                                            (host, namespace.name, device))
        if station is None:
            return (f"no neighbour for {ip} on {device} in {namespace.name}: no PERMANENT "
                    "entry, and nothing on that network answers ARP for it")
        return Neighbor(device, ip, station.mac), f"ARP: answered by {station.label}"

    @staticmethod
    def distributed(switch: HostSwitch, namespace: NamespaceState) -> bool:
        router = switch.view.router(namespace.name.removeprefix(ROUTER_NS_PREFIX))
        return router is None or router.distributed

    # -- segments and the stations on them -------------------------------------------------------
    def station(self, host: str, network_id: str, ip: str, sender: str,
                exclude: tuple[str, str, str] | None = None) -> Station | None:
        """Who answers ARP for ``ip`` on network ``network_id`` (asked from ``host``)."""
        target = ipaddress.ip_address(ip)
        for station in self.stations.values():
            if station.external is not None and ipaddress.ip_address(
                    station.external.ip) == target:
                return station
        order = [host] + [h for h in sorted(self.hosts) if h != host]
        for name in order:
            switch = self.switch(name)
            if isinstance(switch, str):
                continue
            for namespace, link in switch.network_links(network_id):
                if exclude == (name, namespace.name, link.name):
                    continue
                found = namespace_station(name, namespace, link, ip, sender)
                if found is not None:
                    return found
            found = port_station(switch.view, network_id, ip)
            if found is not None:
                return found
        external = external_subnet_of([self.hosts[host].view], network_id, ip)
        if external is None:
            return None
        station = assumed_station(ip, external)
        self.stations[station.mac] = station
        return station

    def mac_table(self, switch: HostSwitch) -> Mapping[str, str]:
        """The host's learned MACs, and the outside stations behind its external patch."""
        patch = switch.external_patch() if self.stations else None
        if patch is None:
            return switch.mac_table
        return {**{mac: patch for mac in self.stations}, **switch.mac_table}

    def external_entry(self, mac: str) -> tuple[str, str, str, str] | None:
        """(host, external bridge, uplink, label) of the namespace device with ``mac``."""
        for name in sorted(self.hosts):
            switch = self.switch(name)
            if isinstance(switch, str) or not switch.uplinks:
                continue
            for namespace in switch.state.namespaces:
                for link in bridge_links(namespace):
                    if link.mac_address.lower() == mac.lower():
                        bridge = sorted(switch.uplinks)[0]
                        return (name, bridge, switch.uplinks[bridge],
                                f"{link.name} in {namespace.name} on {name}")
        return None

    def cross_segment(self, steps: list[Step], at: _OnSegment,
                      destination: Endpoint) -> _Position | _Done:
        mac = at.packet.dl_dst.lower()
        station = self.stations.get(mac)
        if station is not None:
            assert station.external is not None
            steps.append(SegmentStep(from_host=at.host, to_host=station.external.name,
                                     bridge=at.bridge, port=at.port, station=station.label,
                                     packet=at.packet))
            steps.append(DeliveryStep(host=station.external.name, bridge=at.bridge,
                                      ovs_port=at.port, port_id="",
                                      device=station.external.name, packet=at.packet))
            return _DONE
        entry = self.external_entry(mac)
        if entry is None or entry[0] == at.host:
            steps.append(DropStep(host=at.host, place=f"{at.bridge} {at.port}",
                                  reason=f"nothing on the external segment has MAC {mac}"))
            return _DONE
        to_host, bridge, uplink, label = entry
        steps.append(SegmentStep(from_host=at.host, to_host=to_host, bridge=bridge,
                                 port=uplink, station=label, packet=at.packet))
        return _AtSwitch(to_host, bridge, uplink, at.packet)

    def send_from_outside(self, steps: list[Step], source: Endpoint, destination: Endpoint,
                          packet: PacketView) -> _Position | _Done:
        """An outside host sends on its segment: ARP for the destination, then the frame."""
        name = source.device or source.ip
        station = self.outside_arp(packet.nw_dst, packet.nw_src)
        if station is None:
            steps.append(DropStep(host=name, place=f"outside host {name}",
                                  reason=f"nothing on the external segment answers ARP for "
                                         f"{packet.nw_dst}"))
            return _DONE
        entry = self.external_entry(station.mac)
        assert entry is not None and station.host is not None
        to_host, bridge, uplink, _label = entry
        packet = replace(packet, dl_src=(source.mac or placeholder_mac(source.ip)).lower(),
                         dl_dst=station.mac)
        steps.append(SendStep(host=name, port_id="", device=name, ovs_port=uplink,
                              why=f"ARP for {packet.nw_dst} answered by {station.label}",
                              packet=packet))
        steps.append(SegmentStep(from_host=name, to_host=to_host, bridge=bridge, port=uplink,
                                 station=station.label, packet=packet))
        return _AtSwitch(to_host, bridge, uplink, packet)

    def outside_arp(self, ip: str, sender: str) -> Station | None:
        """The namespace device of some host that answers ARP for ``ip`` on a segment."""
        for name in sorted(self.hosts):
            switch = self.switch(name)
            if isinstance(switch, str) or not switch.uplinks:
                continue
            external = sorted({n.id for n in switch.view.networks if n.external}
                              | {r.gateway.network_id for r in switch.view.routers
                                 if r.gateway is not None})
            for network_id in external:
                for namespace, link in switch.network_links(network_id):
                    found = namespace_station(name, namespace, link, ip, sender)
                    if found is not None:
                        return found
        return None

    # -- arriving from a tunnel ----------------------------------------------------------------
    def receive(self, steps: list[Step], at: _FromTunnel,
                destination: Endpoint) -> _Position | _Done:
        switch = self.switch(at.host)
        if isinstance(switch, str):
            steps.append(DropStep(host=at.host, place="tunnel", reason=switch))
            return _DONE
        found = switch.pipeline.tunnel_port_towards(at.sender_ip)
        if found is None:
            steps.append(DropStep(
                host=at.host, place=switch.tunnel_bridge,
                reason=f"{at.host} has no VXLAN port towards {at.sender_ip} ({at.from_host}): "
                       "the frame is not accepted"))
            return _DONE
        bridge, port = found
        return self.switch_pass(steps, _AtSwitch(at.host, bridge, port,
                                                 replace(at.packet, tun_id=at.vni)), destination)


def kernel_mac(host: str, namespace: NamespaceState, device: str) -> str:
    """A stand-in for the MAC the kernel gives a veth end the desired state does not name
    (the ``rfp-``/``fpr-`` pair): stable per (host, namespace, device), locally
    administered."""
    digest = hashlib.blake2b(f"{host}|{namespace.name}|{device}".encode(),
                             digest_size=5).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest)


def _host_of(position: _Position) -> str:
    return position.host


# --- converting a simulated pass into steps ------------------------------------------------------


def is_ct_lookup(flow: Flow) -> bool:
    """Whether ``flow`` looks a connection up in conntrack and recirculates (a ``ct()``
    without commit that continues in a table): the step whose outcome the tracer assumes."""
    return any(type(a) is Ct and not a.commit and a.table is not None for a in flow.actions)


def firewall_note(flow: Flow | None, rules: RuleIndex | None, conntrack: str) -> str:
    """What a firewall flow did, and the connection state it assumed."""
    if flow is None or rules is None:
        return ""
    note = explain_firewall_flow(flow, rules) or ""
    if is_ct_lookup(flow):
        state = "+".join(sorted(ofsim.CT_STATES[conntrack]))
        note = f"{note}; conntrack lookup: assumed +{state} ({conntrack})"
    return note


def openflow_steps(host: str, simulated: ofsim.Trace, base: PacketView,
                   switch_pass: int, rules: RuleIndex | None = None,
                   conntrack: str = ofsim.CT_NEW,
                   firewall_bridge: str = "", assumed_label: int = 0) -> list[OpenFlowStep]:
    """One OpenFlowStep per table lookup; NORMAL and patch crossings become notes; firewall
    flows say which group and rule they stand for, and conntrack lookups what they assumed
    (so that ``--verify`` asks the real switch under the same assumption)."""
    lookup_state = ",".join(sorted(ofsim.CT_STATES[conntrack]))
    result: list[OpenFlowStep] = []
    for step in simulated.steps:
        if step.table is None:
            if result:
                last = result[-1]
                note = f"{last.note}; {step.note}" if last.note else step.note
                result[-1] = replace(last, note=note)
            continue
        after = step.packet_in if step.packet_own is None else step.packet_own
        result.append(OpenFlowStep(
            host=host, bridge=step.bridge, table=step.table, in_port=step.in_port,
            flow=step.flow, packet_in=base.with_ofsim(step.packet_in),
            packet=base.with_ofsim(after), switch_pass=switch_pass,
            note="table miss" if step.flow is None else firewall_note(
                step.flow, rules if step.bridge == firewall_bridge else None, conntrack),
            ct_lookup=(lookup_state, assumed_label)
            if step.flow is not None and is_ct_lookup(step.flow) else None,
        ))
    return result


def diagnose_drop(switch: HostSwitch, simulated: ofsim.Trace, flow_steps: list[OpenFlowStep],
                  destination: Endpoint, walk: _Walk,
                  rules: RuleIndex | None = None) -> DropStep:
    """Name the place and the reason a pass ended without reaching its goal."""
    host = switch.host
    l2pop_table, flood_table = switch.tunnel_table(L2POP_TABLE), switch.tunnel_table(FLOOD_TABLE)
    l2pop = next((s for s in flow_steps
                  if s.bridge == switch.tunnel_bridge and s.table == l2pop_table
                  and (s.flow is None or s.flow.priority == 0)), None)
    flood = next((s for s in flow_steps
                  if s.bridge == switch.tunnel_bridge and s.table == flood_table), None)
    if l2pop is not None and _unicast(l2pop.packet_in.dl_dst):
        mac, vlan = l2pop.packet_in.dl_dst, l2pop.packet_in.dl_vlan
        reason = (f"no L2-population entry for {mac} (local VLAN {vlan}) in "
                  f"{switch.tunnel_bridge} table {l2pop_table} on {host}")
        place = f"{switch.tunnel_bridge} table {l2pop_table}"
        flood_targets = sorted(t.remote_ip or "" for t in simulated.tunnelled)
        if not flood_targets:
            reason += f", and nowhere to flood (table {flood_table} drops it)"
        else:
            hosts = ", ".join(walk.host_by_tunnel_ip(switch, ip) or ip for ip in flood_targets)
            where = destination.host or "the destination's host"
            reason += f"; flooded to {hosts} only, not to {where}"
        return DropStep(host=host, place=place, reason=reason, bridge=switch.tunnel_bridge,
                        table=l2pop_table, flow=flood.flow if flood is not None else None)
    drops = simulated.drops
    explicit = next((d for d in drops if d.flow is not None), None)
    chosen = explicit or next((d for d in drops if d.table is not None), None) or (
        drops[0] if drops else None)
    elsewhere = sorted({o.port for o in simulated.delivered})
    tail = f" (copies went to {', '.join(elsewhere)})" if elsewhere else ""
    if chosen is None:
        return DropStep(host=host, place=switch.integration_bridge,
                        reason=f"the frame never reached {destination.label()}{tail}")
    place = chosen.bridge + (f" table {chosen.table}" if chosen.table is not None else "")
    if chosen.flow is not None:
        flow = chosen.flow
        reason = (f"dropped by flow priority {flow.priority} "
                  f"{flow.match_text or '(any)'} "
                  f"=> {flow.actions_text} [{flow.owner}]")
        why = explain_firewall_flow(flow, rules) if rules is not None else None
        if why is not None and flow.table in FIREWALL_TABLES and (
                chosen.bridge == switch.integration_bridge):
            reason = f"{why} — {reason}"
    else:
        reason = chosen.reason
    return DropStep(host=host, place=place, reason=reason + tail, bridge=chosen.bridge,
                    table=chosen.table, flow=chosen.flow)


def _unicast(mac: str) -> bool:
    return not int(mac.split(":")[0], 16) & 1


# --- verdicts and the entry point ----------------------------------------------------------


def verdict_of(steps: list[Step], destination: Endpoint | None) -> Verdict:
    last = steps[-1] if steps else None
    if isinstance(last, DeliveryStep):
        target = destination.label() if destination is not None else last.device
        if last.bridge == last.device:  # the router namespace itself
            where = f"{last.device} ({last.ovs_port})"
        else:
            where = f"{last.ovs_port} on {last.bridge}"
        return Verdict(True, last.host, where, "",
                       f"delivered to {target} on {last.host} ({where})")
    if isinstance(last, DropStep):
        where = f" on {last.host}" if last.host else ""
        return Verdict(False, last.host or None, last.place, last.reason,
                       f"dropped{where} at {last.place}: {last.reason}")
    return Verdict(False, None, "", "the walk ended without a verdict",
                   "dropped: the walk ended without a verdict")


def _not_found(what: str, request: TraceRequest, source: Endpoint | None) -> Trace:
    ident = request.source if what == "source" else request.destination
    kind = "an IP address, " if what == "destination" else ""
    reason = (f"{what} {ident!r} not found: no port with that id or VM name "
              f"({kind}device_id) on any known host")
    steps: list[Step] = [DropStep(host="", place=what, reason=reason)]
    return Trace(direction="forward", source=source, destination=None, steps=tuple(steps),
                 verdict=verdict_of(steps, None))


def trace_packet(hosts: Mapping[str, HostData], request: TraceRequest) -> Trace:
    """Trace ``request`` through the desired state of ``hosts`` (host name -> HostData)."""
    destination = resolve_destination(hosts, request)
    version = ipaddress.ip_address(destination.ip).version if destination is not None else None
    source = resolve_source(hosts, request, version)
    if source is None:
        return _not_found("source", request, None)
    if destination is None:
        return _not_found("destination", request, source)
    packet = first_packet(source, destination, request)
    labels = None
    if request.conntrack != ofsim.CT_NEW:  # the labels the connection got when it was new
        opening = _Walk(hosts, request.external_hosts)
        _walk_both_ways(opening, request, source, destination, packet)
        labels = opening.labels
    walk = _Walk(hosts, request.external_hosts, request.conntrack, labels)
    return _walk_both_ways(walk, request, source, destination, packet)


def _walk_both_ways(walk: _Walk, request: TraceRequest, source: Endpoint,
                    destination: Endpoint, packet: PacketView) -> Trace:
    if source.external:
        walk.stations.setdefault(source.mac or "", external_station(ExternalHost(
            name=source.device or source.ip, ip=source.ip, mac=source.mac)))
    if destination.external:
        walk.stations.setdefault(destination.mac or "", external_station(ExternalHost(
            name=destination.device or destination.ip, ip=destination.ip,
            mac=destination.mac)))
    forward = walk.run("forward", source, destination, packet)
    answers = destination.port_id is not None or destination.external
    if forward.delivered and request.with_reply and answers:
        delivered = forward.steps[-1]
        assert isinstance(delivered, DeliveryStep)
        reply = walk.run("reply", destination, source, delivered.packet.reply())
        forward = replace(forward, reply=reply)
    return forward
