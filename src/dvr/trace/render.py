"""Traces for people (text, coloured on a terminal) and for programs (JSON). Pure.

Text: one block per host visit, one line per step (plus a line for header rewrites and
the real switch's opinion when verified), then the verdict; the reply follows the same
way.  JSON keys are stable: ``request``, ``source``, ``destination``, ``steps`` (each
with ``kind`` and ``host``; OpenFlow steps with ``bridge``, ``table``, ``priority``,
``match``, ``actions``, ``owner``, ``cookie``, ``packet``...), ``verdict``, ``verified``,
``disagreements`` and ``reply`` (same shape, or null).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dvr.trace.nat import describe_rule
from dvr.trace.steps import (
    DeliveryStep,
    Endpoint,
    NamespaceCheck,
    NamespaceStep,
    OpenFlowStep,
    PacketView,
    RealHit,
    SegmentStep,
    SendStep,
    Step,
    StepCheck,
    Trace,
    TraceRequest,
    TunnelStep,
)

# (host, owner) -> a human description of the owning object, e.g. "port blue-1 (...)"
OwnerDescriber = Callable[[str, str], str]


# --- JSON ---------------------------------------------------------------------------------------


def _cookie(value: int | None) -> str | None:
    return None if value is None else f"{value:#x}"


def _endpoint(endpoint: Endpoint | None) -> dict[str, Any] | None:
    if endpoint is None:
        return None
    return {"ip": endpoint.ip, "port_id": endpoint.port_id, "device": endpoint.device,
            "mac": endpoint.mac, "host": endpoint.host, "network_id": endpoint.network_id,
            "subnet_id": endpoint.subnet_id}


def _real(hit: RealHit | None) -> dict[str, Any] | None:
    if hit is None:
        return None
    return {"bridge": hit.bridge, "table": hit.table, "match": hit.match,
            "priority": hit.priority, "cookie": _cookie(hit.cookie), "miss": hit.miss,
            "actions": list(hit.actions), "notes": list(hit.notes)}


def _check(check: StepCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {"status": check.status, "detail": check.detail, "real": _real(check.real)}


def step_to_dict(step: Step, describe: OwnerDescriber | None = None) -> dict[str, Any]:
    if isinstance(step, OpenFlowStep):
        return {
            "kind": step.kind, "host": step.host, "bridge": step.bridge, "table": step.table,
            "in_port": step.in_port, "priority": step.priority, "match": step.match,
            "actions": step.actions, "owner": step.owner,
            "owner_description": (describe(step.host, step.owner)
                                  if describe is not None and step.owner else None),
            "cookie": _cookie(step.cookie), "note": step.note,
            "switch_pass": step.switch_pass, "packet_in": step.packet_in.to_dict(),
            "packet": step.packet.to_dict(), "check": _check(step.check),
        }
    if isinstance(step, NamespaceStep):
        route = step.route
        return {
            "kind": step.kind, "host": step.host, "namespace": step.namespace,
            "owner": step.owner, "in_device": step.in_device, "out_device": step.out_device,
            "rule": None if step.rule is None else {
                "priority": step.rule.priority, "table": step.rule.table,
                "source": step.rule.source, "iif": step.rule.iif},
            "route": {"destination": route.destination, "device": route.device,
                      "via": route.via, "table": route.table, "scope": route.scope},
            "nexthop": step.nexthop,
            "neighbor": {"device": step.neighbor.device, "ip": step.neighbor.ip_address,
                         "mac": step.neighbor.mac_address,
                         "state": "PERMANENT" if step.resolved_by == "PERMANENT" else "REACHABLE",
                         "resolved_by": step.resolved_by},
            "nat": [{"chain": n.chain, "rule": describe_rule(n), "owner": n.owner}
                    for n in step.nat],
            "conntrack": list(step.conntrack),
            "packet_in": step.packet_in.to_dict(), "packet": step.packet.to_dict(),
            "check": (None if step.check is None
                      else {"status": step.check.status, "detail": step.check.detail}),
        }
    if isinstance(step, SegmentStep):
        return {"kind": step.kind, "host": step.from_host, "from_host": step.from_host,
                "to_host": step.to_host, "bridge": step.bridge, "port": step.port,
                "station": step.station, "packet": step.packet.to_dict()}
    if isinstance(step, TunnelStep):
        return {
            "kind": step.kind, "host": step.from_host, "from_host": step.from_host,
            "to_host": step.to_host, "local_ip": step.local_ip, "remote_ip": step.remote_ip,
            "vni": step.vni, "bridge": step.bridge, "port": step.port,
            "also_flooded_to": list(step.also_flooded_to), "packet": step.packet.to_dict(),
        }
    if isinstance(step, DeliveryStep):
        return {"kind": step.kind, "host": step.host, "bridge": step.bridge,
                "port": step.ovs_port, "port_id": step.port_id, "device": step.device,
                "packet": step.packet.to_dict()}
    if isinstance(step, SendStep):
        return {"kind": step.kind, "host": step.host, "port_id": step.port_id,
                "device": step.device, "port": step.ovs_port, "why": step.why,
                "packet": step.packet.to_dict()}
    flow = step.flow
    return {"kind": step.kind, "host": step.host, "place": step.place, "reason": step.reason,
            "bridge": step.bridge, "table": step.table,
            "flow": None if flow is None else {
                "table": flow.table, "priority": flow.priority, "match": flow.match_text,
                "actions": flow.actions_text, "owner": flow.owner, "cookie": _cookie(flow.cookie)}}


def trace_to_dict(trace: Trace, request: TraceRequest | None = None,
                  describe: OwnerDescriber | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if request is not None:
        data["request"] = request.to_dict()
    data.update({
        "direction": trace.direction,
        "source": _endpoint(trace.source),
        "destination": _endpoint(trace.destination),
        "steps": [step_to_dict(s, describe) for s in trace.steps],
        "verdict": trace.verdict.to_dict(),
        "verified": trace.verified,
        "disagreements": sum(1 for s in trace.openflow_steps()
                             if s.check is not None and s.check.status in ("disagree",
                                                                           "missing")),
        "unverified": sum(1 for s in trace.openflow_steps()
                          if s.check is not None and s.check.status == "error"),
        "reply": (trace_to_dict(trace.reply, None, describe)
                  if trace.reply is not None else None),
    })
    return data


# --- text -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    colour: bool = False

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour and text else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)


REWRITTEN_FIELDS = ("dl_src", "dl_dst", "dl_vlan", "tun_id", "nw_ttl", "nw_src", "nw_dst")


def rewrites(before: PacketView, after: PacketView) -> list[str]:
    """Header fields that differ: ['dl_src fa:..:0c -> fa:..:01', 'vlan 2 -> -']."""
    changes = []
    for name in REWRITTEN_FIELDS:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        label = {"dl_vlan": "vlan", "tun_id": "tun_id", "nw_ttl": "ttl", "nw_src": "src",
                 "nw_dst": "dst"}.get(name, name)
        shown = [("-" if v is None else (f"{v:#x}" if name == "tun_id" else str(v)))
                 for v in (old, new)]
        changes.append(f"{label} {shown[0]} -> {shown[1]}")
    return changes


def _packet_line(packet: PacketView) -> str:
    ports = ("" if packet.proto == "icmp"
             else f" {packet.tp_src} -> {packet.tp_dst}")
    return (f"{packet.proto} {packet.nw_src} -> {packet.nw_dst}{ports} ttl {packet.nw_ttl}, "
            f"{packet.dl_src} -> {packet.dl_dst}")


def _check_line(check: StepCheck, style: Style) -> str:
    label = {"agree": "real switch agrees", "disagree": "REAL SWITCH DISAGREES",
             "missing": "REAL SWITCH DISAGREES", "error": "NOT VERIFIED"}[check.status]
    if check.agrees:
        return style.green(label)
    return style.red(f"{label}: {check.detail}")


def _kernel_line(check: NamespaceCheck, style: Style) -> str:
    label = "NOT VERIFIED" if check.status == "error" else "KERNEL DISAGREES"
    return style.red(f"{label}: {check.detail}")


def _step_lines(step: Step, style: Style, describe: OwnerDescriber | None) -> list[str]:
    if isinstance(step, SendStep):
        return [f"  {style.cyan('send')}     {step.device} on {step.ovs_port}: {step.why}",
                f"           {style.dim(_packet_line(step.packet))}"]
    if isinstance(step, OpenFlowStep):
        if step.flow is None:
            head = (f"  {step.bridge:<8} {step.table:>3}  " + style.yellow("table miss")
                    + " => drop")
        else:
            owner = style.dim(f"[{step.owner}]")
            head = (f"  {step.bridge:<8} {step.table:>3}  prio {step.priority:<3} "
                    f"{step.match or '(any)'} => {step.actions} {owner}")
        if step.check is not None and step.check.agrees:
            head += "  " + style.green("[ok]")
        lines = [head]
        details = rewrites(step.packet_in, step.packet)
        if step.note and step.flow is not None:
            details.append(step.note)
        if describe is not None and step.owner and not step.owner.startswith("bridge:"):
            details.append(describe(step.host, step.owner))
        if details:
            lines.append("               " + style.dim("; ".join(details)))
        if step.check is not None and not step.check.agrees:
            lines.append("               " + _check_line(step.check, style))
        return lines
    if isinstance(step, NamespaceStep):
        route = step.route
        via = f" via {route.via}" if route.via else ""
        kind = "connected" if route.scope == "link" and not route.via else f"table {route.table}"
        rule = (f"rule {step.rule.priority} from {step.rule.source or 'all'} lookup "
                f"{step.rule.table}; " if step.rule is not None else "")
        lines = [
            f"  {style.cyan('route')}    {step.namespace}: in {step.in_device}, "
            f"{rule}route {route.destination}{via} dev {route.device} ({kind})",
        ]
        lines += [f"           nat {describe_rule(n)} [{n.owner}]" for n in step.nat]
        lines += [f"           {note}" for note in step.conntrack]
        lines += [
            f"           neighbour {step.neighbor.ip_address} lladdr "
            f"{step.neighbor.mac_address} on {step.neighbor.device} ({step.resolved_by}); "
            f"out {step.out_device}",
            "           " + style.dim("; ".join(rewrites(step.packet_in, step.packet))),
        ]
        if step.check is not None:
            lines.append("           " + (style.green("[kernel agrees]") if step.check.agrees
                                          else _kernel_line(step.check, style)))
        return lines
    if isinstance(step, SegmentStep):
        return [f"  {style.cyan('segment')}  {step.from_host} -> {step.to_host} on the "
                f"external segment of {step.bridge} ({step.port}): {step.station}",
                f"           {style.dim(_packet_line(step.packet))}"]
    if isinstance(step, TunnelStep):
        flooded = (f" (flooded; also to {', '.join(step.also_flooded_to)})"
                   if step.also_flooded_to else "")
        return [f"  {style.cyan('tunnel')}   {step.from_host} {step.local_ip} -> "
                f"{step.to_host or '?'} {step.remote_ip}  VNI {step.vni} via "
                f"{step.port}{flooded}",
                f"           {style.dim('inner: ' + _packet_line(step.packet))}"]
    if isinstance(step, DeliveryStep):
        return [f"  {style.green('deliver')}  {step.device} on {step.ovs_port}",
                f"           {style.dim(_packet_line(step.packet))}"]
    return [f"  {style.red('drop')}     at {step.place}: {step.reason}"]


def _step_host(step: Step) -> str:
    return step.from_host if isinstance(step, TunnelStep | SegmentStep) else step.host


def _title(trace: Trace, request: TraceRequest | None) -> str:
    source = trace.source.label() if trace.source else (request.source if request else "?")
    destination = (trace.destination.label() if trace.destination
                   else (request.destination if request else "?"))
    proto = ""
    if request is not None:
        proto = f"  {request.proto}" + (f" dport {request.dport}"
                                         if request.dport is not None else "")
    return f"{trace.direction}: {source} -> {destination}{proto}"


def render_text(trace: Trace, request: TraceRequest | None = None, colour: bool = False,
                describe: OwnerDescriber | None = None) -> str:
    style = Style(colour)
    lines = [style.bold(_title(trace, request))]
    current_host: str | None = None
    for step in trace.steps:
        host = _step_host(step)
        if host and host != current_host:
            lines.append(style.bold(f"== {host} =="))
            current_host = host
        lines.extend(_step_lines(step, style, describe))
    verdict = trace.verdict
    if verdict.delivered:
        lines.append(style.green(f"verdict: {verdict.summary}"))
    else:
        lines.append(style.red(f"verdict: {verdict.summary}"))
    if trace.verified:
        own = [s for s in trace.openflow_steps() if s.check is not None]
        bad = [s for s in own if s.check is not None and s.check.status != "agree"
               and s.check.status != "error"]
        unknown = [s for s in own if s.check is not None and s.check.status == "error"]
        if bad:
            named = ", ".join(f"{s.host} {s.bridge} table {s.table}" for s in bad)
            lines.append(style.red(f"verify: the real switch disagrees at {named}"))
        if unknown:
            lines.append(style.yellow(f"verify: {len(unknown)} OpenFlow steps could not be "
                                      "checked on the real switch"))
        if not bad and not unknown:
            count = len(trace.openflow_steps())
            lines.append(style.green(f"verify: the real switches agree with all {count} "
                                     "OpenFlow steps"))
        checked = [s for s in trace.namespace_steps() if s.check is not None]
        wrong = [s for s in checked if s.check is not None and not s.check.agrees]
        if checked and not wrong:
            lines.append(style.green(f"verify: the kernel agrees with all {len(checked)} "
                                     "namespace steps"))
        elif wrong:
            named = ", ".join(f"{s.host} {s.namespace}" for s in wrong)
            lines.append(style.red(f"verify: the kernel disagrees or was not asked at {named}"))
    if trace.reply is not None:
        lines.append("")
        lines.append(render_text(trace.reply, None, colour, describe))
    return "\n".join(lines)
