"""Security groups laid over a scenario's HostView (for the firewall tests).

``FirewallOverlay`` holds groups, remote sets and which ports are secured in which groups;
``apply`` puts them into a HostView the way the server would (sorted, only the groups of
the host's ports and the sets their rules name).  ``edit_overlay`` makes one random change
of the kinds a user makes (rules, membership, port security, address groups).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

from dvr.agent.desired.openflow import Conjunction
from dvr.model.hostview import (
    AddressSetView,
    HostView,
    SecurityGroupRuleView,
    SecurityGroupView,
)
from tests.unit.desired.desired_scenarios import BLUE, HOST_2, Cloud, Vm, east_west_cloud

GROUP_IDS = ("sg-a", "sg-b", "sg-c")
ADDRESS_GROUP_IDS = ("ag-x", "ag-y")
CIDRS = ("198.18.0.0/24", "198.18.1.5/32", "203.0.113.0/26", "2001:db8::/64", "2001:db8::5/128")


@dataclass
class FirewallOverlay:
    groups: dict[str, SecurityGroupView] = field(default_factory=dict)
    address_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # port id -> groups
    unsecured: set[str] = field(default_factory=set)
    remote_ips: dict[str, str] = field(default_factory=dict)  # members on other hosts

    def apply(self, view: HostView) -> HostView:
        ports = tuple(
            replace(p, port_security_enabled=p.id in self.members and p.id not in self.unsecured,
                    security_group_ids=tuple(sorted(self.members.get(p.id, ()))))
            for p in view.ports)
        used = {g for p in ports for g in p.security_group_ids if g in self.groups}
        groups = tuple(self.groups[g] for g in sorted(used))
        ips = {**self.remote_ips, **{p.id: f.ip_address for p in view.ports
                                     for f in p.fixed_ips}}
        addresses = {g: tuple(sorted(f"{ip}/32" for port, ip in ips.items()
                                     if g in self.members.get(port, ())))
                     for g in self.groups}
        wanted = {r.remote_group_id or r.remote_address_group_id for g in groups
                  for r in g.rules} - {None}
        sets = [AddressSetView(s, "security_group", addresses[s])
                for s in sorted(wanted) if s in addresses]
        sets += [AddressSetView(s, "address_group", tuple(sorted(self.address_groups[s])))
                 for s in sorted(wanted) if s in self.address_groups]
        return replace(view, ports=ports, security_groups=groups,
                       address_sets=tuple(sorted(sets, key=lambda a: (a.kind, a.id))))


def draw_rule(data: st.DataObject, index: int) -> SecurityGroupRuleView:
    direction = data.draw(st.sampled_from(["ingress", "egress"]), label="direction")
    ethertype = data.draw(st.sampled_from(["IPv4", "IPv4", "IPv6"]), label="ethertype")
    protocol = data.draw(st.sampled_from([None, 1, 6, 17, 58, 132, 47]), label="protocol")
    low = data.draw(st.sampled_from([None, 22, 80, 1000]), label="port min")
    high = None if low is None else low + data.draw(st.sampled_from([0, 1, 999]))
    remote = data.draw(st.sampled_from(["any", "prefix", "group", "address_group"]))
    return SecurityGroupRuleView(
        id=f"rule-{index:03d}", direction=direction, ethertype=ethertype, protocol=protocol,
        port_range_min=low if protocol in (6, 17, 132) else None,
        port_range_max=high if protocol in (6, 17, 132) else None,
        icmp_type=data.draw(st.sampled_from([None, 8])) if protocol in (1, 58) else None,
        remote_ip_prefix=data.draw(st.sampled_from(CIDRS)) if remote == "prefix" else None,
        remote_group_id=data.draw(st.sampled_from(GROUP_IDS)) if remote == "group" else None,
        remote_address_group_id=data.draw(st.sampled_from(ADDRESS_GROUP_IDS))
        if remote == "address_group" else None,
    )


def edit_overlay(data: st.DataObject, overlay: FirewallOverlay, port_ids: list[str]) -> None:
    """One random change (in place)."""
    kind = data.draw(st.sampled_from(["add_rule", "add_rule", "remove_rule", "stateful",
                                      "remove_group", "join", "leave", "port_security",
                                      "address_group"]), label="firewall edit")
    group_id = data.draw(st.sampled_from(GROUP_IDS), label="group")
    group = overlay.groups.get(group_id, SecurityGroupView(group_id, True, ()))
    if kind == "add_rule":
        rule = draw_rule(data, data.draw(st.integers(0, 200), label="rule index"))
        rules = tuple(r for r in group.rules if r.id != rule.id) + (rule,)
        overlay.groups[group_id] = replace(group, rules=tuple(sorted(rules, key=lambda r: r.id)))
    elif kind == "remove_rule" and group.rules:
        victim = data.draw(st.sampled_from(group.rules))
        overlay.groups[group_id] = replace(group, rules=tuple(r for r in group.rules
                                                              if r != victim))
    elif kind == "stateful" and group_id in overlay.groups:
        overlay.groups[group_id] = replace(group, stateful=not group.stateful)
    elif kind == "remove_group":
        overlay.groups.pop(group_id, None)
    elif kind in ("join", "leave") and port_ids:
        port = data.draw(st.sampled_from(port_ids), label="port")
        groups = set(overlay.members.get(port, ()))
        (groups.add if kind == "join" else groups.discard)(group_id)
        overlay.members[port] = tuple(sorted(groups))
    elif kind == "port_security" and port_ids:
        port = data.draw(st.sampled_from(port_ids), label="port")
        overlay.unsecured ^= {port}
    elif kind == "address_group":
        name = data.draw(st.sampled_from(ADDRESS_GROUP_IDS))
        overlay.address_groups[name] = tuple(data.draw(st.sets(st.sampled_from(CIDRS))))


def draw_overlay(data: st.DataObject, port_ids: list[str]) -> FirewallOverlay:
    """Groups with a few rules each; most ports secured in one or two of them."""
    overlay = FirewallOverlay()
    for group_id in GROUP_IDS:
        rules = {r.id: r for r in (draw_rule(data, i) for i in
                                   range(data.draw(st.integers(0, 4), label="rules")))}
        overlay.groups[group_id] = SecurityGroupView(
            group_id, data.draw(st.sampled_from([True, True, False]), label="stateful"),
            tuple(sorted(rules.values(), key=lambda r: r.id)))
    for name in ADDRESS_GROUP_IDS:
        overlay.address_groups[name] = tuple(sorted(data.draw(st.sets(st.sampled_from(CIDRS)))))
    for port in port_ids:
        overlay.members[port] = tuple(sorted(data.draw(
            st.sets(st.sampled_from(GROUP_IDS), max_size=2), label="port groups")))
    return overlay


# --- a cloud with one group: east_west_cloud plus a second blue VM on compute-2 ----------

GROUP = "sg-a"
BLUE_4 = "b4000000-0000-0000-0000-000000000004"  # a second blue VM on compute-2
EGRESS_ANY = SecurityGroupRuleView("r1-egress", "egress", "IPv4")
ICMP_IN = SecurityGroupRuleView("r2-icmp", "ingress", "IPv4", protocol=1)
TCP_8080_FROM_GROUP = SecurityGroupRuleView("r3-8080", "ingress", "IPv4", protocol=6,
                                            port_range_min=8080, port_range_max=8080,
                                            remote_group_id=GROUP)
SSH_FROM_PREFIX = SecurityGroupRuleView("r4-ssh", "ingress", "IPv4", protocol=6,
                                        port_range_min=22, port_range_max=22,
                                        remote_ip_prefix="198.18.0.0/24")
RULES = (EGRESS_ANY, ICMP_IN, TCP_8080_FROM_GROUP, SSH_FROM_PREFIX)


def overlay(rules=RULES, stateful: bool = True, unsecured: frozenset[str] = frozenset(),
            cloud: Cloud | None = None) -> FirewallOverlay:
    vms = (cloud or firewall_cloud()).vms
    return FirewallOverlay(groups={GROUP: SecurityGroupView(GROUP, stateful, rules)},
                           members={v.id: (GROUP,) for v in vms}, unsecured=set(unsecured),
                           remote_ips={v.id: v.ip for v in vms})


def firewall_cloud() -> Cloud:
    return east_west_cloud().with_vm(Vm(BLUE_4, BLUE, "fa:16:3e:00:01:04", "203.0.113.14",
                                        HOST_2))


def conjunction_problems(flows, one_flow_per_match: bool = True) -> list[str]:
    """What OVS would refuse or resolve otherwise than the simulator: one id at several
    priorities or clause counts, two clauses of one id on one flow, a clause of an id
    missing, conjunction and other actions on one flow and (``one_flow_per_match``) two
    flows with one (table, priority, match) (random clouds may give two ports one MAC)."""
    problems: list[str] = []
    shape: dict[tuple[int, int], set[tuple[int, int]]] = {}  # (table, id) -> (prio, n)
    clauses: dict[tuple[int, int], set[int]] = {}
    seen: dict[tuple[int, int, object], object] = {}
    for flow in flows:
        key = (flow.table, flow.priority, flow.match)
        if key in seen and one_flow_per_match:
            problems.append(f"two flows for one match: {flow.content}")
        seen[key] = flow
        conjunctions = [a for a in flow.actions if type(a) is Conjunction]
        if conjunctions and len(conjunctions) != len(flow.actions):
            problems.append(f"conjunction and other actions: {flow.content}")
        ids = [i for a in conjunctions for i in a.ids]
        if len(ids) != len(set(ids)):
            problems.append(f"two clauses of one id on one flow: {flow.content}")
        for action in conjunctions:
            for ident in action.ids:
                shape.setdefault((flow.table, ident), set()).add(
                    (flow.priority, action.n_clauses))
                clauses.setdefault((flow.table, ident), set()).add(action.clause)
    for key, found in shape.items():
        if len(found) != 1:
            problems.append(f"conjunction {key} at several priorities / clause counts")
    for key, found in clauses.items():
        (_, n), *_ = shape[key]
        # every clause but the remote one, which an empty remote set leaves without flows
        if not {1, 2} <= found <= set(range(1, n + 1)):
            problems.append(f"conjunction {key} has clauses {sorted(found)} of {n}")
    return problems
