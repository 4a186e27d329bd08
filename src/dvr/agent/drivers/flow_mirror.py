"""The flows of one bridge as an OpenFlow flow monitor reports them (pure bookkeeping).

A ``FlowTable`` replays the events of ``ovs-ofctl monitor <bridge> watch:`` (parsed by
``openflow.parse_monitor_line``): the INITIAL events are a full dump, then every ADDED,
DELETED and MODIFIED flow follows, in the order the switch made the changes.  The monitor
prints no priority, so a flow is known by (table, match, cookie): the agent's cookies hash
the priority in (docs/design.md §4), so two of its flows never share that key.  An event
the table cannot place makes it ``consistent = False`` (the driver then dumps instead and
starts a new monitor): a flow deleted that it does not hold, a modification of one of
several flows of a match, and an ADDED flow next to another of the same match: OVS reports
an add that *replaces* a flow (same match and priority) as ADDED alone, which the monitor
cannot tell from a second priority.  (The agent's own bundles delete a flow before they
add its successor, so they never replace one.)
"""

from __future__ import annotations

from collections.abc import Mapping

from dvr.agent.drivers.openflow import FlowEvent, MonitoredFlow
from dvr.agent.reconcile.observed import ObservedFlow

_Key = tuple[int, str]  # (table, match text)


class FlowTable:
    def __init__(self) -> None:
        self._groups: dict[_Key, dict[int, MonitoredFlow]] = {}  # -> cookie -> flow
        self.consistent = True
        self.version = 0  # changes whenever the flows do
        self._named: dict[MonitoredFlow, tuple[object, ObservedFlow]] = {}
        self._names_key: object = None  # the last port naming, one object while it holds
        self._answer: tuple[int, object, tuple[ObservedFlow, ...]] | None = None

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def apply(self, event: FlowEvent) -> bool:
        """Replay one event; False (and ``consistent`` False from then on) if it does not
        fit what the table holds."""
        flow = event.flow
        key = (flow.table, flow.match)
        group = self._groups.setdefault(key, {})
        if event.kind == "INITIAL" or (event.kind == "ADDED"
                                       and set(group) <= {flow.cookie}):
            group[flow.cookie] = flow
        elif event.kind == "ADDED":  # next to another flow of that match: replacing it?
            self.consistent = False
        elif event.kind == "DELETED":
            if group.pop(flow.cookie, None) is None:
                self.consistent = False
        elif flow.cookie in group:  # MODIFIED: new actions
            group[flow.cookie] = flow
        elif len(group) == 1:  # MODIFIED: the one flow of that match, with a new cookie
            group.clear()
            group[flow.cookie] = flow
        else:
            self.consistent = False
        if not group:
            del self._groups[key]
        self.version += 1
        return self.consistent

    def flows(self, names: Mapping[int, str] | None = None) -> tuple[ObservedFlow, ...]:
        """Every flow, as ``parse_dump_flows`` orders them, ports named by ``names``
        (OpenFlow number -> port name).  Parsed once per flow and port naming."""
        names_key = tuple(sorted((names or {}).items()))
        if names_key == self._names_key:
            names_key = self._names_key  # compared by identity below
        self._names_key = names_key
        if self._answer is not None and self._answer[0] == self.version \
                and self._answer[1] is names_key:
            return self._answer[2]
        named: dict[MonitoredFlow, tuple[object, ObservedFlow]] = {}
        for group in self._groups.values():
            for flow in group.values():
                known = self._named.get(flow)
                if known is None or known[0] is not names_key:
                    known = (names_key, flow.observed(names))
                named[flow] = known
        self._named = named  # forget flows that are gone
        answer = tuple(sorted(observed for _, observed in named.values()))
        self._answer = (self.version, names_key, answer)
        return answer
