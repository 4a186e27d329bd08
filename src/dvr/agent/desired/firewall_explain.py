"""What a firewall flow is for, in words: which group and rule it enforces (pure).

Rules are found again from the flow itself: a rule flow commits its selector's mark into
``ct_label``, an established flow matches it, a conjunctive flow carries the selector's
conj_id as its match or in its ``conjunction`` actions (``firewall_rules``), so the
HostView's groups are enough to name the rules behind a flow, the clauses that the ports
of a network share included.  Used by ``dvr flows --explain`` and ``dvr trace``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dvr.agent.desired.firewall import (
    INGRESS_LABEL_SHIFT,
)
from dvr.agent.desired.firewall_rules import (
    RuleRef,
    Selector,
    conjunction_ids,
    describe_selector,
    selector_of,
)
from dvr.agent.desired.openflow import Conjunction, Ct, Match
from dvr.agent.desired.state import Flow
from dvr.agent.desired.tables import (
    PRIO_FW_FROM_PORT,
    PRIO_FW_TO_PORT,
    PRIO_INT_ACCESS_PORT,
    IntTable,
)
from dvr.model.hostview import AddressSetView, HostView

FIREWALL_TABLES = frozenset({IntTable.BASE_EGRESS, IntTable.RULES_EGRESS,
                             IntTable.ACCEPT_OR_INGRESS, IntTable.BASE_INGRESS,
                             IntTable.RULES_INGRESS})
_LOW32 = 0xFFFFFFFF


class RuleIndex:
    """mark -> (selector, the rules it stands for) over every group of a view, and conj_id
    -> mark (the ids the desired state gives them)."""

    def __init__(self, view: HostView) -> None:
        found: dict[int, tuple[Selector, list[RuleRef]]] = {}
        for group in view.security_groups:
            for rule in group.rules:
                selector = selector_of(rule)
                if selector is not None:
                    entry = found.setdefault(selector.mark, (selector, []))
                    entry[1].append(RuleRef(group.id, rule.id))
        self._by_mark = {m: (s, tuple(sorted(refs))) for m, (s, refs) in found.items()}
        self._mark_of_conj = {ident: selector.mark for selector, ident in conjunction_ids(
            s for s, _ in found.values()).items()}
        self._sets: Mapping[str, AddressSetView] = {a.id: a for a in view.address_sets}

    def marks(self, flow: Flow) -> list[int]:
        """The selector marks a flow refers to."""
        marks: list[int] = []
        for action in flow.actions:
            if type(action) is Ct and action.commit and action.label_mask:
                marks.append((action.label >> INGRESS_LABEL_SHIFT if action.label_mask > _LOW32
                              else action.label) & _LOW32)
            elif type(action) is Conjunction:
                marks.extend(self._mark_of_conj.get(i, i) for i in action.ids)
        match = flow.match
        if match.ct_label is not None and match.ct_label_mask is not None:
            shift = INGRESS_LABEL_SHIFT if match.ct_label_mask > _LOW32 else 0
            marks.append((match.ct_label >> shift) & _LOW32)
        if match.conj_id is not None:
            marks.append(self._mark_of_conj.get(match.conj_id, match.conj_id))
        return marks

    def describe(self, marks: Iterable[int]) -> str:
        parts = []
        for mark in sorted(set(marks)):
            entry = self._by_mark.get(mark)
            if entry is None:
                parts.append(f"a rule no longer in place (mark {mark:#010x})")
                continue
            selector, refs = entry
            rules = ", ".join(f"group {r.group_id} rule {r.rule_id}" for r in refs)
            parts.append(f"{rules} ({describe_selector(selector, self._sets)})")
        return "; ".join(parts)


def _clause_part(match: Match) -> str:
    """Which clause of a conjunction a flow is (``firewall.port_clause_flows`` and
    ``firewall.zone_flows``)."""
    if match.in_port is not None or match.dl_dst is not None:
        return "port part (new connections of this port)"
    if any(v is not None for v in (match.nw_src, match.nw_dst, match.ipv6_src, match.ipv6_dst)):
        return "remote address (shared by the network's ports)"
    return "protocol and ports (shared by the network's ports)"


def _drops(flow: Flow) -> bool:
    return not flow.actions or any(type(a).__name__ == "Drop" for a in flow.actions)


def explain_firewall_flow(flow: Flow, rules: RuleIndex) -> str | None:
    """A sentence about a firewall flow of br-int; None for a flow that is not one."""
    table, match = flow.table, flow.match
    if table == IntTable.LOCAL_SWITCHING and flow.priority == PRIO_INT_ACCESS_PORT:
        return "zone: frames from this access port carry their network (VLAN) in reg6"
    if table == IntTable.LOCAL_SWITCHING and flow.priority == PRIO_FW_FROM_PORT:
        return "firewall: every frame from this port enters its egress firewall"
    if table == IntTable.TRANSIENT and flow.priority == PRIO_FW_TO_PORT:
        return "firewall: unicast frames for this port enter its ingress firewall"
    if table == IntTable.DVR_TO_SRC_MAC and any(
            getattr(a, "table", None) == IntTable.BASE_INGRESS for a in flow.actions):
        return "firewall: DVR-routed frames for this port go through its ingress firewall"
    if table not in FIREWALL_TABLES:
        return None
    direction = "egress" if table < IntTable.BASE_INGRESS else "ingress"
    marks = rules.marks(flow)
    if marks:
        what = rules.describe(marks)
        if match.ct_state and "+est" in match.ct_state:
            side = "replies to" if "+rpl" in match.ct_state else "more of"
            return f"firewall {direction}: {side} connections admitted by {what}"
        if any(type(a) is Conjunction for a in flow.actions):
            return f"firewall {direction}: the {_clause_part(match)} of {what}"
        return f"firewall {direction}: allowed by {what}"
    if match.ct_state and "+inv" in match.ct_state:
        return "firewall: invalid connections are dropped"
    if match.ct_state and "+rel" in match.ct_state:
        return f"firewall {direction}: related traffic (ICMP errors) of accepted connections"
    if table == IntTable.ACCEPT_OR_INGRESS:
        return "firewall: accepted egress goes on (to the destination's ingress or NORMAL)"
    if table == IntTable.BASE_EGRESS:
        if _drops(flow):
            return ("firewall egress: dropped (not the port's MAC/address, or a server "
                    "message a VM must not send)")
        return "firewall egress: anti-spoofing passed (the port's own MAC and address)"
    if table == IntTable.BASE_INGRESS:
        if _drops(flow):
            return "firewall ingress: dropped (not IP, ARP or ND)"
        if any(type(a) is Ct for a in flow.actions):
            return "firewall ingress: IP for this port goes to the conntrack lookup"
        return "firewall ingress: always allowed (ARP, ND, DHCP replies)"
    if _drops(flow):
        return f"firewall {direction}: no rule of the port's groups allows it"
    return f"firewall {direction}"
