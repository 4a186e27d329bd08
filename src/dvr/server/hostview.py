"""Build the HostView of one host with a handful of set-based queries (no per-object loops
over the database): ports, networks and their remote hosts, routers and everything they
carry, peer host MACs, FIP gateways, and the revision — all from one transaction.

What many hosts share (networks with their remote hosts, routers but their floating IPs,
host MACs, security groups and address sets) comes from the revision's ``RevisionParts``:
built by the first view of a revision that needs it, reused by the others
(``server/hostview_parts.py``)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import cache
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, or_, select

from dvr.db.tables import (
    dvr_host_macs,
    dvr_hosts,
    floatingips,
    ip_allocations,
    networks,
    port_security_groups,
    ports,
    router_interfaces,
    routers,
    subnets,
)
from dvr.model.hostview import (
    OWNER_FLOATINGIP_AGENT_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    OWNER_ROUTER_INTERFACE_DISTRIBUTED,
    OWNER_ROUTER_SNAT,
    ArpEntry,
    ExtraRoute,
    FixedIp,
    FloatingIpView,
    GatewayView,
    HostMac,
    HostView,
    L2Entry,
    NetworkView,
    PortView,
    RemoteHost,
    RouterInterfaceView,
    RouterView,
    SnatPortView,
    SubnetView,
)
from dvr.server.hostview_firewall import address_pairs, firewall_views
from dvr.server.hostview_parts import (
    HostParts,
    OwnRows,
    RevisionParts,
    SharedViewParts,
    interned,
    reuse,
)
from dvr.server.memory_only import parts_locked
from dvr.server.services.common import ids_statement, in_ids_param
from dvr.server.services.firewall_rules import is_filtered
from dvr.server.services.l2pop import L2POP_NETWORK_TYPES
from dvr.server.services.notify import current_revision
from dvr.server.services.scheduler import (
    central_hosts,
    router_hosts,
    routers_hosted_on,
    routers_on_networks,
)

DEFAULT_AGENT_MODE = "dvr"
MANY = 100  # beyond this many keys, read the whole (small) table instead of a long IN list
# PostgreSQL's default random_page_cost (4) assumes spinning disks: with it, the planner
# scans the whole ports table to join a few hundred rows instead of probing its primary key.
# The tables a view reads fit in memory, so the read transaction plans with the usual
# SSD/cached value (SET LOCAL: this transaction only).
POSTGRES_RANDOM_PAGE_COST = "1.1"


def _fixed_ips_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return select(
        ip_allocations.c.port_id, ip_allocations.c.subnet_id, ip_allocations.c.ip_address
    ).where(ids(ip_allocations.c.port_id))


def fixed_ips_by_port(conn: Connection, port_ids: Collection[str]) -> dict[str, list[FixedIp]]:
    """port id -> its fixed IPs, sorted by (subnet id, address); ports without any are absent."""
    result: dict[str, list[FixedIp]] = defaultdict(list)
    if port_ids:
        query = ids_statement(conn, _fixed_ips_query)
        for port_id, subnet_id, ip in conn.execute(query, {"ids": list(port_ids)}).all():
            result[port_id].append(FixedIp(subnet_id, ip))
    return {k: sorted(v, key=lambda f: (f.subnet_id, f.ip_address)) for k, v in result.items()}


_PORT_COLUMNS = (
    "id",
    "network_id",
    "mac_address",
    "device_owner",
    "device_id",
    "host",
    "admin_state_up",
    "port_security_enabled",
    "allowed_address_pairs",
)
# a host's ports, and their fixed IPs and groups: constant statements (one compiled form)
_HOST_PORTS = select(*(ports.c[n] for n in _PORT_COLUMNS)).where(
    ports.c.host == bindparam("host")
)
_HOST_FIXED_IPS = (
    select(ip_allocations.c.port_id, ip_allocations.c.subnet_id, ip_allocations.c.ip_address)
    .join(ports, ports.c.id == ip_allocations.c.port_id)
    .where(ports.c.host == bindparam("host"))
)
_HOST_PORT_GROUPS = (
    select(port_security_groups.c.port_id, port_security_groups.c.security_group_id)
    .join(ports, ports.c.id == port_security_groups.c.port_id)
    .where(ports.c.host == bindparam("host"))
)


def _own_rows(conn: Connection, host: str, revision: int, kept: OwnRows | None,
              shared: SharedViewParts | None) -> OwnRows:
    """What the view reads of ``host`` alone at ``revision``: ``kept`` (read at an earlier
    revision) while no revision since may have changed it, else read now."""
    if kept is not None and shared is not None and shared.own_rows_kept(
        host, kept.revision, revision
    ):
        return replace(kept, revision=revision)
    router_ids = frozenset(routers_hosted_on(conn, host))
    return OwnRows(
        revision=revision,
        registration=conn.execute(_REGISTRATION, {"host": host}).first(),
        ports=tuple(conn.execute(_HOST_PORTS, {"host": host}).all()),
        fixed_ips=tuple(conn.execute(_HOST_FIXED_IPS, {"host": host}).all()),
        groups=tuple(conn.execute(_HOST_PORT_GROUPS, {"host": host}).all()),
        router_ids=router_ids,
        floating_ips=tuple(_floating_ip_rows(conn, router_ids, host)) if router_ids else (),
    )


def _local_ports(own: OwnRows, last: HostParts, made: HostParts) -> tuple[PortView, ...]:
    """The ports bound to the host, by id (``last``: its last view's, taken again where
    made from the same rows; ``made``: this view's)."""
    fixed: dict[str, list[FixedIp]] = defaultdict(list)
    for port_id, subnet_id, ip in own.fixed_ips:
        fixed[port_id].append(FixedIp(subnet_id, ip))
    groups: dict[str, list[str]] = defaultdict(list)
    for port_id, group_id in own.groups:
        groups[port_id].append(group_id)
    views = []
    for r in sorted(own.ports, key=lambda r: r.id):
        source = (
            tuple(r),
            tuple(sorted(fixed.get(r.id, ()), key=lambda f: (f.subnet_id, f.ip_address))),
            tuple(sorted(groups.get(r.id, ()))),
        )
        kept = last.ports.get(r.id)
        view = kept[1] if kept is not None and kept[0] == source else _port_view(*source)
        made.ports[r.id] = (source, view)
        views.append(view)
    return tuple(views)


def _port_view(
    row: tuple[Any, ...], fixed_ips: tuple[FixedIp, ...], group_ids: tuple[str, ...]
) -> PortView:
    (port_id, network_id, mac, owner, device_id, host, admin_state_up, port_security,
     pairs) = row
    return PortView(
        id=port_id,
        network_id=network_id,
        mac_address=mac,
        fixed_ips=fixed_ips,
        device_owner=owner,
        device_id=device_id,
        host=host,
        admin_state_up=admin_state_up,
        # the network's own ports (routers, DHCP) are never filtered
        port_security_enabled=is_filtered(port_security, owner),
        security_group_ids=group_ids,
        allowed_address_pairs=address_pairs(pairs, mac),
    )


def _subnets_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return select(
        subnets.c.id,
        subnets.c.network_id,
        subnets.c.cidr,
        subnets.c.gateway_ip,
        subnets.c.ip_version,
    ).where(ids(subnets.c.network_id))


def _subnet_views(conn: Connection, network_ids: Collection[str]) -> dict[str, list[SubnetView]]:
    result: dict[str, list[SubnetView]] = defaultdict(list)
    if network_ids:
        query = ids_statement(conn, _subnets_query)
        for row in conn.execute(query, {"ids": list(network_ids)}).all():
            result[row.network_id].append(SubnetView(*row))
    return {k: sorted(v, key=lambda s: s.id) for k, v in result.items()}


def _network_views(
    conn: Connection, host: str, network_ids: set[str], parts: RevisionParts,
    last: HostParts, made: HostParts,
) -> tuple[NetworkView, ...]:
    """The networks, each with the remote hosts other than ``host`` (``last``: what the
    host's last view made of them, taken again where the shared network is the same;
    ``made``: what this one made)."""
    with parts_locked(parts.lock, conn):
        missing = parts.missing_networks(network_ids)
        if missing:
            before = parts.previous.networks if parts.previous else {}
            for network_id, network in _shared_networks(conn, missing).items():
                parts.networks[network_id] = _reusing_network(before.get(network_id), network)
    views = []
    for network_id in sorted(network_ids):
        network = parts.networks.get(network_id)
        if network is None:
            continue
        kept = last.networks.get(network_id)
        if kept is not None and kept[0] is network:
            view = kept[1]
        else:
            view = _without_host(network, host)
        made.networks[network_id] = (network, view)
        views.append(view)
    return tuple(views)


def _host_index(items: tuple[Any, ...], host: str) -> int | None:
    """Where ``host``'s item is in ``items`` (sorted by their ``host``), or None."""
    at = bisect_left(items, host, key=attrgetter("host"))
    return at if at < len(items) and items[at].host == host else None


def _without_host(network: NetworkView, host: str) -> NetworkView:
    """``network`` without ``host``'s remote-host entry."""
    at = _host_index(network.remote_hosts, host)
    if at is None:
        return network
    remote = network.remote_hosts
    return replace(network, remote_hosts=remote[:at] + remote[at + 1:])


def _split_host_macs(macs: tuple[HostMac, ...], host: str, last: HostParts, made: HostParts
                     ) -> tuple[str | None, tuple[HostMac, ...]]:
    """``host``'s own MAC and its peers' (every other host's), taken again from the host's
    last view while made from the same MACs (``last``; ``made``: this view's)."""
    if last.host_macs is not None and last.host_macs[0] is macs:
        made.host_macs = last.host_macs
    else:
        at = _host_index(macs, host)
        own = None if at is None else macs[at].mac_address
        peers = macs if at is None else macs[:at] + macs[at + 1:]
        made.host_macs = (macs, own, peers)
    return made.host_macs[1], made.host_macs[2]


def _reusing_network(previous: NetworkView | None, new: NetworkView) -> NetworkView:
    """``new``, made of ``previous``'s objects where they are equal."""
    if previous is None or previous == new:
        return previous or new
    return replace(new, remote_hosts=interned(previous.remote_hosts, new.remote_hosts))


def _networks_query(ids: Callable[[Any], Any]) -> Select[Any]:
    columns = ("id", "name", "network_type", "segmentation_id", "mtu", "external",
               "physical_network")
    return select(*(networks.c[n] for n in columns)).where(ids(networks.c.id))


def _shared_networks(conn: Connection, network_ids: set[str]) -> dict[str, NetworkView]:
    """The networks, each with the remote-host entry of every host touching it."""
    subnet_map = _subnet_views(conn, network_ids)
    rows = conn.execute(ids_statement(conn, _networks_query), {"ids": list(network_ids)}).all()
    tunnel_networks = {row.id for row in rows if row.network_type in L2POP_NETWORK_TYPES}
    remote = _remote_hosts(conn, tunnel_networks)
    return {
        row.id: NetworkView(
            id=row.id,
            name=row.name,
            network_type=row.network_type,
            segmentation_id=row.segmentation_id,
            mtu=row.mtu,
            external=row.external,
            physical_network=row.physical_network,
            subnets=tuple(subnet_map.get(row.id, [])),
            remote_hosts=remote.get(row.id, ()),
        )
        for row in rows
    }


def _remote_hosts(conn: Connection, network_ids: set[str]) -> dict[str, tuple[RemoteHost, ...]]:
    """L2 population of the tunnel networks: network -> the hosts touching it (those with a
    tunnel endpoint), each with the L2 entries of its bound ports, sorted by host."""
    if not network_ids:
        return {}
    # one pass over the bound ports of these networks: who touches them through a port, and
    # the L2 entries of every host (network -> host -> mac -> ips)
    by_network: dict[str, dict[str, dict[str, list[str]]]] = {n: {} for n in network_ids}
    for network_id, other, mac, ip in bound_port_addresses(conn, network_ids):
        hosts = by_network[network_id]
        macs = hosts.get(other)
        if macs is None:
            macs = hosts[other] = {}
        ips = macs.get(mac)
        if ips is None:
            ips = macs[mac] = []
        if ip is not None:
            ips.append(ip)
    touchers: dict[str, set[str]] = {n: set(hosts) for n, hosts in by_network.items()}
    routers_by_network = routers_on_networks(conn, network_ids)
    hosts_by_router = router_hosts(conn, {r for rs in routers_by_network.values() for r in rs})
    for network_id, router_ids in routers_by_network.items():
        for router_id in router_ids:
            touchers[network_id] |= hosts_by_router[router_id]
    tunnel_ips = _tunnel_ips(conn, {h for hs in touchers.values() for h in hs})
    result = {}
    for network_id, hosts in by_network.items():
        remote = []
        for other in sorted(touchers[network_id]):
            tunnel_ip = tunnel_ips.get(other)
            if tunnel_ip is None:
                continue  # not registered yet: no tunnel endpoint to reach it
            macs = hosts.get(other)
            entries = (
                tuple(
                    L2Entry(mac, tuple(sorted(ips)) if len(ips) > 1 else tuple(ips))
                    for mac, ips in sorted(macs.items())
                )
                if macs
                else ()
            )
            remote.append(RemoteHost(other, tunnel_ip, entries))
        result[network_id] = tuple(remote)
    return result


_TUNNEL_IPS = select(dvr_hosts.c.host, dvr_hosts.c.tunnel_ip).where(
    dvr_hosts.c.tunnel_ip.is_not(None))


def _tunnel_ips_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return _TUNNEL_IPS.where(ids(dvr_hosts.c.host))


def _tunnel_ips(conn: Connection, hosts: set[str]) -> dict[str, str]:
    if not hosts:
        return {}
    if len(hosts) > MANY:
        return {h: ip for h, ip in conn.execute(_TUNNEL_IPS).all() if h in hosts}
    rows = conn.execute(ids_statement(conn, _tunnel_ips_query), {"ids": list(hosts)})
    return {h: ip for h, ip in rows.all() if h in hosts}


def _bound_port_addresses_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return (
        select(ports.c.network_id, ports.c.host, ports.c.mac_address, ip_allocations.c.ip_address)
        .select_from(ports.outerjoin(ip_allocations, ip_allocations.c.port_id == ports.c.id))
        .where(ids(ports.c.network_id), ports.c.host != "")
    )


def bound_port_addresses(conn: Connection, network_ids: Collection[str]) -> list[Any]:
    """(network, host, mac, ip-or-None) of every bound port on these networks."""
    query = ids_statement(conn, _bound_port_addresses_query)
    return conn.execute(query, {"ids": list(network_ids)}).all()


_ROUTER_INTERFACES = select(
    router_interfaces.c.router_id,
    router_interfaces.c.port_id,
    router_interfaces.c.subnet_id,
    router_interfaces.c.network_id,
    ports.c.mac_address,
    ip_allocations.c.ip_address,
    subnets.c.cidr,
    networks.c.mtu,
).select_from(
    router_interfaces.join(ports, ports.c.id == router_interfaces.c.port_id)
    .join(
        ip_allocations,
        and_(
            ip_allocations.c.port_id == router_interfaces.c.port_id,
            ip_allocations.c.subnet_id == router_interfaces.c.subnet_id,
        ),
    )
    .join(subnets, subnets.c.id == router_interfaces.c.subnet_id)
    .join(networks, networks.c.id == router_interfaces.c.network_id)
)


def _router_interfaces_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return _ROUTER_INTERFACES.where(ids(router_interfaces.c.router_id))


def router_interface_rows(conn: Connection, router_ids: Collection[str] | None = None) -> list[Any]:
    """(router_id, port_id, subnet_id, network_id, mac_address, ip_address, cidr, mtu) of
    every interface of these routers (None: of every router), in no particular order."""
    if router_ids is None:
        return conn.execute(_ROUTER_INTERFACES).all()
    query = ids_statement(conn, _router_interfaces_query)
    return conn.execute(query, {"ids": list(router_ids)}).all()


def _arp_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return (
        select(ip_allocations.c.subnet_id, ip_allocations.c.ip_address, ports.c.mac_address)
        .select_from(ip_allocations.join(ports, ports.c.id == ip_allocations.c.port_id))
        .where(
            ids(ip_allocations.c.subnet_id),
            ports.c.device_owner.not_in(
                (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_INTERFACE_DISTRIBUTED)
            ),
        )
    )


def _arp_rows(conn: Connection, subnet_ids: Collection[str]) -> list[Any]:
    if not subnet_ids:
        return []
    return conn.execute(ids_statement(conn, _arp_query), {"ids": list(subnet_ids)}).all()


def _snat_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return (
        select(
            ports.c.device_id,
            ports.c.id,
            ip_allocations.c.subnet_id,
            ports.c.network_id,
            ports.c.mac_address,
            ip_allocations.c.ip_address,
            subnets.c.cidr,
            networks.c.mtu,
        )
        .select_from(
            ports.join(ip_allocations, ip_allocations.c.port_id == ports.c.id)
            .join(subnets, subnets.c.id == ip_allocations.c.subnet_id)
            .join(networks, networks.c.id == ports.c.network_id)
        )
        .where(ports.c.device_owner == OWNER_ROUTER_SNAT, ids(ports.c.device_id))
    )


def _snat_rows(conn: Connection, router_ids: Collection[str]) -> list[Any]:
    return conn.execute(ids_statement(conn, _snat_query), {"ids": list(router_ids)}).all()


@cache
def _floating_ips_query(dialect: str) -> Select[Any]:
    """The floating IPs of the routers bound to "router_ids" that the host bound to "host"
    serves: those of ports bound to it (distributed routers), and every one of a legacy
    router (all on its central host, the only host such a router is hosted on); built once
    per dialect."""
    return (
        select(
            floatingips.c.router_id,
            floatingips.c.id,
            floatingips.c.floating_ip_address,
            floatingips.c.floating_network_id,
            floatingips.c.fixed_ip_address,
            floatingips.c.fixed_port_id,
            ports.c.host,
        )
        .select_from(
            floatingips.join(ports, ports.c.id == floatingips.c.fixed_port_id)
            .join(routers, routers.c.id == floatingips.c.router_id)
        )
        .where(
            in_ids_param(dialect, floatingips.c.router_id, "router_ids"),
            or_(ports.c.host == bindparam("host"), routers.c.distributed.is_(False)),
        )
    )


def _floating_ip_rows(conn: Connection, router_ids: Collection[str], host: str) -> list[Any]:
    """The floating IPs of these routers that ``host`` serves."""
    query = _floating_ips_query(conn.dialect.name)
    return conn.execute(query, {"router_ids": list(router_ids), "host": host}).all()


def _router_views(
    conn: Connection, own: OwnRows, parts: RevisionParts, last: HostParts, made: HostParts,
) -> tuple[RouterView, ...]:
    """The routers the host hosts, each with the floating IPs it serves (``last``: what the
    host's last view made of them, taken again where the shared router and the floating IPs
    are the same; ``made``: what this one made)."""
    router_ids = set(own.router_ids)
    if not router_ids:
        return ()
    with parts_locked(parts.lock, conn):
        missing = parts.missing_routers(router_ids)
        if missing:
            before = parts.previous.routers if parts.previous else {}
            for router_id, router in _shared_routers(conn, missing).items():
                parts.routers[router_id] = _reusing_router(before.get(router_id), router)
    fips: dict[str, list[FloatingIpView]] = defaultdict(list)
    for r in own.floating_ips:
        fips[r.router_id].append(FloatingIpView(*r[1:]))
    views = []
    for router_id in sorted(router_ids):
        router = parts.routers.get(router_id)
        if router is None:
            continue
        served = tuple(sorted(fips.get(router_id, ()), key=lambda f: f.id))
        kept = last.routers.get(router_id)
        if kept is not None and kept[0] is router and kept[1] == served:
            view = kept[2]
        else:
            view = replace(router, floating_ips=served) if served else router
        made.routers[router_id] = (router, served, view)
        views.append(view)
    return tuple(views)


def _reusing_router(previous: RouterView | None, new: RouterView) -> RouterView:
    """``new``, made of ``previous``'s objects where they are equal."""
    if previous is None or previous == new:
        return previous or new
    return replace(new, arp_entries=interned(previous.arp_entries, new.arp_entries),
                   interfaces=reuse(previous.interfaces, new.interfaces))


def _routers_query(ids: Callable[[Any], Any]) -> Select[Any]:
    columns = ("id", "name", "distributed", "ha", "admin_state_up", "routes", "gw_port_id",
               "gw_network_id", "enable_snat")
    return select(*(routers.c[n] for n in columns)).where(ids(routers.c.id))


def _port_macs_query(ids: Callable[[Any], Any]) -> Select[Any]:
    return select(ports.c.id, ports.c.mac_address).where(ids(ports.c.id))


def _shared_routers(conn: Connection, router_ids: set[str]) -> dict[str, RouterView]:
    """The routers, without floating IPs (they depend on the host)."""
    router_rows = conn.execute(ids_statement(conn, _routers_query),
                               {"ids": list(router_ids)}).all()
    interfaces: dict[str, list[RouterInterfaceView]] = defaultdict(list)
    subnet_router: dict[str, str] = {}
    for r in router_interface_rows(conn, router_ids):
        interfaces[r.router_id].append(
            RouterInterfaceView(
                port_id=r.port_id,
                subnet_id=r.subnet_id,
                network_id=r.network_id,
                mac_address=r.mac_address,
                ip_address=r.ip_address,
                cidr=r.cidr,
                mtu=r.mtu,
            )
        )
        subnet_router[r.subnet_id] = r.router_id
    arp: dict[str, list[ArpEntry]] = defaultdict(list)
    for subnet_id, ip, mac in _arp_rows(conn, subnet_router):
        arp[subnet_router[subnet_id]].append(ArpEntry(subnet_id, ip, mac))
    snat: dict[str, list[SnatPortView]] = defaultdict(list)
    for r in _snat_rows(conn, router_ids):
        snat[r.device_id].append(SnatPortView(*r[1:]))
    central = central_hosts(conn, router_ids)
    gateways = _gateway_views(conn, router_rows)
    return {
        row.id: RouterView(
            id=row.id,
            name=row.name,
            distributed=row.distributed,
            ha=row.ha,
            admin_state_up=row.admin_state_up,
            interfaces=tuple(sorted(interfaces[row.id], key=lambda i: i.subnet_id)),
            arp_entries=tuple(
                sorted(arp[row.id], key=lambda a: (a.subnet_id, a.ip_address, a.mac_address))
            ),
            routes=tuple(
                sorted(
                    (ExtraRoute(r["destination"], r["nexthop"]) for r in row.routes or []),
                    key=lambda r: (r.destination, r.nexthop),
                )
            ),
            gateway=gateways.get(row.id),
            snat_host=central.get(row.id),
            snat_ports=tuple(sorted(snat[row.id], key=lambda s: (s.subnet_id, s.port_id))),
            floating_ips=(),
        )
        for row in router_rows
    }


def _gateway_views(conn: Connection, router_rows: list[Any]) -> dict[str, GatewayView]:
    with_gateway = [r for r in router_rows if r.gw_port_id]
    if not with_gateway:
        return {}
    port_ids = [r.gw_port_id for r in with_gateway]
    macs = dict(conn.execute(ids_statement(conn, _port_macs_query), {"ids": port_ids}).all())
    fixed = fixed_ips_by_port(conn, port_ids)
    external_subnets = _subnet_views(conn, {r.gw_network_id for r in with_gateway})
    return {
        r.id: GatewayView(
            port_id=r.gw_port_id,
            network_id=r.gw_network_id,
            mac_address=macs[r.gw_port_id],
            fixed_ips=tuple(fixed.get(r.gw_port_id, [])),
            subnets=tuple(external_subnets.get(r.gw_network_id, [])),
            enable_snat=r.enable_snat,
        )
        for r in with_gateway
    }


def _host_macs(conn: Connection, parts: RevisionParts) -> tuple[HostMac, ...]:
    """Every host's MAC, sorted by host."""
    with parts_locked(parts.lock, conn):
        if parts.host_macs is None:
            rows = conn.execute(select(dvr_host_macs.c.host, dvr_host_macs.c.mac_address)).all()
            before = parts.previous.host_macs if parts.previous else None
            macs = interned(before or (), tuple(HostMac(h, m) for h, m in sorted(rows)))
            parts.host_macs = reuse(before, macs)
        return parts.host_macs


_REGISTRATION = select(dvr_hosts).where(dvr_hosts.c.host == bindparam("host"))


def build_host_view(
    conn: Connection, host: str, shared: SharedViewParts | None = None,
    revision: int | None = None,
) -> HostView:
    """``host``'s view; with ``shared``, the parts other views of the revision built too
    are taken from there (and those missing are added).  ``revision``: the revision
    ``conn`` reads, when the caller knows it (``memory_only``: a view from memory)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL random_page_cost = {POSTGRES_RANDOM_PAGE_COST}")
    if revision is None:
        revision = current_revision(conn)
    parts = RevisionParts(revision) if shared is None else shared.at(revision)
    macs = _host_macs(conn, parts)
    last = parts.host_parts.get(host)
    own = _own_rows(conn, host, revision, last.own, shared)
    registration = own.registration
    made = HostParts(own=own)
    local_ports = _local_ports(own, last, made)
    router_views = _router_views(conn, own, parts, last, made)
    network_ids = {p.network_id for p in local_ports} | {
        i.network_id for r in router_views for i in r.interfaces
    }
    security_groups, address_sets = firewall_views(
        conn, {g for p in local_ports for g in p.security_group_ids}, parts
    )
    network_views = _network_views(conn, host, network_ids, parts, last, made)
    host_mac, peer_host_macs = _split_host_macs(macs, host, last, made)
    parts.host_parts.put(host, made)
    return HostView(
        host=host,
        revision=revision,
        agent_mode=registration.agent_mode if registration else DEFAULT_AGENT_MODE,
        host_mac=host_mac,
        tunnel_ip=registration.tunnel_ip if registration else None,
        ports=local_ports,
        networks=network_views,
        routers=router_views,
        peer_host_macs=peer_host_macs,
        fip_agent_gateways=tuple(
            p for p in local_ports if p.device_owner == OWNER_FLOATINGIP_AGENT_GATEWAY
        ),
        security_groups=security_groups,
        address_sets=address_sets,
    )
