"""``GET /dvr/v1/trace``: the tracer run on the server's own data, as one JSON document.

Every host's desired state is rebuilt the way ``dvr flows`` and the agent do it
(``dvr.hoststate.rebuild_host`` over the server's HostView builder and the agent's last
report of plugged VIFs and local VLANs), all in one read transaction and only
for the hosts the walk visits (a lazy mapping).  A host whose agent never reported gets
its VM/DHCP ports assumed plugged under Nova's tap names (listed in ``assumed_plugged``).  The
tracer's ``trace_packet`` is pure; this module only feeds it and turns its ``Trace`` into
the web view's shape:

    {"src": Endpoint, "dst": Endpoint, "proto", "dport", "revision",
     "verdict": "delivered" | "dropped", "reason", "summary",
     "denied": None | Denial (below), "reply": {"verdict", "reason", "summary", "denied"},
     "hops": [{"kind": "vm"|"router"|"namespace"|"tunnel"|"segment"|"address"|"drop",
               "host", "id", "name", "to_host", "vni", "ip"}],
              (a drop's "id" is the router when it happened in a router namespace, and it
              carries "firewall" ("egress"/"ingress"/None) and "port_id", the port whose
              firewall denied it; a router's SNAT namespace is a "router" hop on its SNAT
              host, a fip- namespace a "namespace" hop; an outside address -- the source or
              the destination of a north/south path -- an "address" hop with its "ip")
     "steps": [{"index", "direction", "host", "kind", "bridge", "table", "priority",
                "match", "actions", "owner", "owner_description", "summary", "firewall"}],
              ("firewall": "egress"/"ingress" for a step in br-int's firewall tables)
     "assumed_plugged": [hosts whose VIF names were assumed, not reported]}

A trace is *denied* when it ends in a drop in a port's firewall: its ``Denial`` is
``{"step": index of the drop step, "direction": "forward"|"reply", "host", "firewall":
"egress"|"ingress", "port_id", "port_name", "reason"}``, the port being the sender's for
egress and the receiver's for ingress.

``kind`` of a step: send, flow, router, tunnel, segment, deliver, drop.  ``hops`` are the forward
path's places, in order, for drawing it; ``steps`` list both directions (the reply after
the request, when the request was delivered to a port).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from dvr.agent.desired.firewall_explain import FIREWALL_TABLES
from dvr.agent.desired.names import (
    FAST_PATH_OWNER_PREFIX,
    router_namespace_name,
    snat_namespace_name,
)
from dvr.agent.desired.tables import IntTable
from dvr.db.tables import dvr_hosts, ports
from dvr.hoststate import describe_owner, rebuild_host
from dvr.server.errors import NeutronError, http_bad_request
from dvr.server.hostview import build_host_view
from dvr.server.services import agents as agent_service
from dvr.server.services.notify import current_revision
from dvr.server.tx import ReadTx
from dvr.trace import ofsim
from dvr.trace.hosts import DEFAULT_BRIDGES, HostData, LazyHostData
from dvr.trace.nat import describe_rule
from dvr.trace.steps import (
    PROTOCOLS,
    DeliveryStep,
    DropStep,
    Endpoint,
    NamespaceStep,
    OpenFlowStep,
    PacketView,
    SegmentStep,
    SendStep,
    Step,
    Trace,
    TraceRequest,
    TunnelStep,
)
from dvr.trace.tracer import trace_packet

AgentReport = Callable[[ReadTx, str], dict[str, Any] | None]


def stored_agent_report(tx: ReadTx, host: str) -> dict[str, Any] | None:
    """What the host's agent last reported with a heartbeat (VIFs, local VLANs); None when
    the host is unregistered or its agent never reported."""
    query = select(dvr_hosts.c.agent_report).where(dvr_hosts.c.host == host)
    row = tx.conn.execute(query).first()
    if row is None or row.agent_report is None:
        return None
    return agent_service.agent_report(tx, host)


def known_hosts(conn: Connection) -> list[str]:
    registered = {row[0] for row in conn.execute(select(dvr_hosts.c.host))}
    bound = {row[0] for row in conn.execute(select(ports.c.host).where(ports.c.host != ""))}
    return sorted(registered | bound)


def load_hosts(tx: ReadTx, report_of: AgentReport, assumed: set[str]) -> LazyHostData:
    def load(host: str) -> HostData:
        rebuilt = rebuild_host(build_host_view(tx.conn, host), report_of(tx, host))
        if rebuilt.assumed:
            assumed.add(host)
        return HostData(rebuilt.view, rebuilt.state, rebuilt.plugged)

    return LazyHostData(known_hosts(tx.conn), load)


def parse_trace_request(params: Mapping[str, str]) -> TraceRequest:
    src = (params.get("src") or "").strip()
    dst = (params.get("dst") or "").strip()
    if not src or not dst:
        raise http_bad_request("Invalid input: src and dst are required (VM name, port id or IP).")
    proto = (params.get("proto") or "icmp").lower()
    if proto not in PROTOCOLS:
        raise http_bad_request(
            f"Invalid input for proto. Reason: '{proto}' is not one of {', '.join(PROTOCOLS)}."
        )
    raw_dport = (params.get("dport") or "").strip()
    dport: int | None = None
    if raw_dport:
        if not raw_dport.isdigit():
            raise http_bad_request(f"Invalid input for dport. Reason: '{raw_dport}' is not a port.")
        dport = int(raw_dport)
    try:
        return TraceRequest(source=src, destination=dst, proto=proto, dport=dport)  # type: ignore[arg-type]
    except ValueError as exc:
        raise http_bad_request(f"Invalid input: {exc}") from None


# --- the web shape ---------------------------------------------------------------------------


def _endpoint(endpoint: Endpoint | None, asked: str) -> dict[str, Any]:
    if endpoint is None:
        return {"kind": "unknown", "id": None, "name": asked, "host": None, "ip": None,
                "mac": None}
    return {
        "kind": "vm" if endpoint.port_id else ("outside" if endpoint.external else "address"),
        "id": endpoint.port_id,
        "name": endpoint.device,
        "host": endpoint.host,
        "ip": endpoint.ip,
        "mac": endpoint.mac,
    }


def _packet_change(before: PacketView, after: PacketView) -> str:
    changes = []
    for field in ("nw_src", "nw_dst", "dl_src", "dl_dst", "dl_vlan", "tun_id", "nw_ttl"):
        old, new = getattr(before, field), getattr(after, field)
        if old != new:
            changes.append(f"{field} {old if old is not None else '-'} → "
                           f"{new if new is not None else '-'}")
    return "; ".join(changes)


def _describe(hosts: Mapping[str, HostData], host: str, owner: str) -> str | None:
    if not owner:
        return None
    try:
        return describe_owner(hosts[host].view, owner)
    except KeyError:
        return owner


def firewall_side(bridge: str | None, table: int | None) -> str | None:
    """"egress"/"ingress" for a lookup in one of br-int's firewall tables, else None."""
    if bridge != DEFAULT_BRIDGES.integration_bridge or table not in FIREWALL_TABLES:
        return None
    return "egress" if table < IntTable.BASE_INGRESS else "ingress"


def _step(hosts: Mapping[str, HostData], step: Step) -> dict[str, Any]:
    base: dict[str, Any] = {
        "host": None, "kind": step.kind, "bridge": None, "table": None, "priority": None,
        "match": None, "actions": None, "owner": None, "owner_description": None,
        "summary": "", "firewall": None,
    }
    if isinstance(step, SendStep):
        return {**base, "host": step.host, "kind": "send", "bridge": step.ovs_port,
                "owner": f"port:{step.port_id}",
                "owner_description": _describe(hosts, step.host, f"port:{step.port_id}"),
                "summary": f"{step.device} sends {step.packet.nw_src} → {step.packet.nw_dst} "
                           f"to {step.packet.dl_dst}: {step.why}"}
    if isinstance(step, OpenFlowStep):
        change = _packet_change(step.packet_in, step.packet)
        summary = "; ".join(x for x in (
            "no flow matched (table miss)" if step.flow is None else "", change, step.note) if x)
        return {**base, "host": step.host, "kind": "flow", "bridge": step.bridge,
                "table": step.table, "priority": step.priority, "match": step.match,
                "actions": step.actions, "owner": step.owner or None,
                "owner_description": _describe(hosts, step.host, step.owner),
                "summary": summary, "firewall": firewall_side(step.bridge, step.table)}
    if isinstance(step, NamespaceStep):
        route = step.route
        via = f" via {route.via}" if route.via else ""
        rule = (f"rule {step.rule.priority} → table {step.rule.table}; "
                if step.rule is not None else "")
        actions = (f"{rule}route {route.destination}{via} dev {route.device} "
                   f"(table {route.table}); neigh {step.neighbor.ip_address} lladdr "
                   f"{step.neighbor.mac_address} ({step.resolved_by})")
        nat = "; ".join([describe_rule(n) for n in step.nat] + list(step.conntrack))
        return {**base, "host": step.host, "kind": "router", "bridge": step.namespace,
                "match": f"in {step.in_device}, to {step.packet_in.nw_dst}",
                "actions": actions + (f"; nat {nat}" if nat else ""),
                "owner": step.owner, "owner_description": _describe(hosts, step.host, step.owner),
                "summary": f"routed out of {step.out_device} to {step.nexthop}; "
                           + _packet_change(step.packet_in, step.packet)}
    if isinstance(step, TunnelStep):
        flooded = (f"; also flooded to {', '.join(step.also_flooded_to)}"
                   if step.also_flooded_to else "")
        return {**base, "host": step.from_host, "kind": "tunnel", "bridge": step.bridge,
                "match": f"out {step.port}",
                "actions": f"VXLAN VNI {step.vni}: {step.local_ip} → {step.remote_ip}",
                "summary": f"to {step.to_host or 'an unknown host'}{flooded}"}
    if isinstance(step, SegmentStep):
        return {**base, "host": step.from_host, "kind": "segment", "bridge": step.bridge,
                "match": f"out {step.port}" if step.to_host == step.station else None,
                "actions": f"{step.from_host} → {step.to_host} on the external segment",
                "summary": f"to {step.station} ({step.packet.dl_dst})"}
    if isinstance(step, DeliveryStep):
        return {**base, "host": step.host, "kind": "deliver", "bridge": step.bridge,
                "match": f"out {step.ovs_port}", "owner": f"port:{step.port_id}",
                "owner_description": _describe(hosts, step.host, f"port:{step.port_id}"),
                "summary": f"delivered to {step.device} ({step.packet.dl_dst})"}
    if isinstance(step, DropStep):
        flow = step.flow
        return {**base, "host": step.host or None, "kind": "drop", "bridge": step.bridge,
                "table": step.table, "priority": flow.priority if flow else None,
                "match": flow.match_text if flow else None,
                "actions": flow.actions_text if flow else None,
                "owner": flow.owner if flow else None,
                "owner_description": _describe(hosts, step.host, flow.owner) if flow else None,
                "summary": f"dropped at {step.place}: {step.reason}",
                "firewall": firewall_side(step.bridge, step.table)}
    return {**base, "summary": repr(step)}


def _router_of_port(hosts: Mapping[str, HostData], host: str, port_id: str) -> str | None:
    try:
        view = hosts[host].view
    except KeyError:
        return None
    for router in view.routers:
        if any(i.port_id == port_id for i in router.interfaces):
            return router.id
    return None


def _router_of_namespace(hosts: Mapping[str, HostData], host: str, place: str) -> str | None:
    """The router whose namespace is ``place`` on ``host`` (None: not a router namespace)."""
    try:
        view = hosts[host].view
    except KeyError:
        return None
    namespace = place.split(" ")[0]
    return next((r.id for r in view.routers
                 if namespace in (router_namespace_name(r.id), snat_namespace_name(r.id))), None)


def _hops(hosts: Mapping[str, HostData], trace: Trace) -> list[dict[str, Any]]:
    hops: list[dict[str, Any]] = []
    source = trace.source
    if source is not None and source.port_id:
        hops.append({"kind": "vm", "host": source.host, "id": source.port_id,
                     "name": source.device})
    elif source is not None and source.external:
        hops.append({"kind": "address", "host": None, "id": None, "name": source.device,
                     "ip": source.ip})
    for step in trace.steps:
        if isinstance(step, NamespaceStep):
            kind, _, ident = step.owner.partition(":")
            hops.append({"kind": "router" if kind in ("router", "snat") else "namespace",
                         "host": step.host, "id": ident, "name": step.namespace})
        elif (isinstance(step, OpenFlowStep) and step.owner.startswith(FAST_PATH_OWNER_PREFIX)
              and step.packet != step.packet_in):  # the fast-path flow that routed it
            hops.append({"kind": "router", "host": step.host,
                         "id": step.owner.removeprefix(FAST_PATH_OWNER_PREFIX),
                         "name": f"{step.bridge} (east/west fast path)"})
        elif isinstance(step, TunnelStep):
            hops.append({"kind": "tunnel", "host": step.from_host, "to_host": step.to_host,
                         "vni": step.vni})
        elif isinstance(step, SegmentStep):
            hops.append({"kind": "segment", "host": step.from_host, "to_host": step.to_host,
                         "name": step.bridge})
        elif isinstance(step, DeliveryStep) and step.host not in hosts:
            hops.append({"kind": "address", "host": None, "id": None, "name": step.device,
                         "ip": trace.destination.ip if trace.destination else None})
        elif isinstance(step, DeliveryStep):
            router_id = _router_of_port(hosts, step.host, step.port_id)
            if router_id is not None:
                hops.append({"kind": "router", "host": step.host, "id": router_id,
                             "name": step.device})
            else:
                hops.append({"kind": "vm", "host": step.host, "id": step.port_id,
                             "name": step.device})
        elif isinstance(step, DropStep) and step.host:
            side = firewall_side(step.bridge, step.table)
            port = _firewalled_port(trace, side)
            hops.append({"kind": "drop", "host": step.host, "name": step.place,
                         "id": _router_of_namespace(hosts, step.host, step.place),
                         "firewall": side, "port_id": port.port_id if port else None})
    return hops


def _firewalled_port(trace: Trace, side: str | None) -> Endpoint | None:
    """The port whose firewall a drop on ``side`` happened in: the sender's for egress, the
    receiver's for ingress (None: not a firewall drop)."""
    if side is None:
        return None
    return trace.source if side == "egress" else trace.destination


def _denial(trace: Trace, direction: str, first_index: int) -> dict[str, Any] | None:
    """The trace's Denial (see the module docstring) when it ends in a port's firewall."""
    last = trace.steps[-1] if trace.steps else None
    if not isinstance(last, DropStep):
        return None
    side = firewall_side(last.bridge, last.table)
    if side is None:
        return None
    port = _firewalled_port(trace, side)
    return {
        "step": first_index + len(trace.steps) - 1,
        "direction": direction,
        "host": last.host or None,
        "firewall": side,
        "port_id": port.port_id if port else None,
        "port_name": port.device if port else None,
        "reason": last.reason,
    }


def trace_document(
    hosts: Mapping[str, HostData], request: TraceRequest, trace: Trace, revision: int
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    denials: dict[str, dict[str, Any] | None] = {"forward": None, "reply": None}
    for direction, part in (("forward", trace), ("reply", trace.reply)):
        if part is None:
            continue
        denials[direction] = _denial(part, direction, len(steps) + 1)
        for step in part.steps:
            steps.append({"index": len(steps) + 1, "direction": direction,
                          **_step(hosts, step)})
    reply = trace.reply
    return {
        "src": _endpoint(trace.source, request.source),
        "dst": _endpoint(trace.destination, request.destination),
        "proto": request.proto,
        "dport": request.dport,
        "revision": revision,
        "verdict": "delivered" if trace.delivered else "dropped",
        "reason": trace.verdict.reason or None,
        "summary": trace.verdict.summary,
        "denied": denials["forward"],
        "reply": (
            None
            if reply is None
            else {"verdict": "delivered" if reply.delivered else "dropped",
                  "reason": reply.verdict.reason or None, "summary": reply.verdict.summary,
                  "denied": denials["reply"]}
        ),
        "hops": _hops(hosts, trace),
        "steps": steps,
    }


def run_trace(
    tx: ReadTx, request: TraceRequest, report_of: AgentReport = stored_agent_report
) -> dict[str, Any]:
    """Trace ``request`` over every host's desired state, rebuilt from this transaction."""
    assumed: set[str] = set()
    hosts = load_hosts(tx, report_of, assumed)
    try:
        trace = trace_packet(hosts, request)
    except (ofsim.UnsupportedFlow, ofsim.AmbiguousMatch, ofsim.SimulationLimit) as exc:
        raise NeutronError(
            f"The tracer cannot model this path: {exc}", type_name="TraceFailed"
        ) from None
    document = trace_document(hosts, request, trace, current_revision(tx.conn))
    document["assumed_plugged"] = sorted(assumed)
    return document
