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

The table also keeps its flows by cookie and a journal of the cookies each event changed,
so that an observation (``snapshot``, a ``MirroredFlows``) answers "the flows of this
cookie" and "the cookies changed since that earlier observation" without walking every
flow: the incremental plan's inputs (``reconcile/plan.py``).  Flows changed by hand on the
switch are in the journal like the agent's own, so the next plan repairs them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping

from dvr.agent.drivers.openflow import FlowEvent, MonitoredFlow
from dvr.agent.reconcile.observed import MirroredFlows, ObservedFlow

_Key = tuple[int, str]  # (table, match text)
# parsed flows: flow -> (the port naming it was parsed with, the flow as observed)
_Parsed = dict[MonitoredFlow, tuple[object, ObservedFlow]]
JOURNAL_KEPT = 50_000  # journal entries kept at least (beyond, twice the flows held)


def _observed(flow: MonitoredFlow, names: Mapping[int, str] | None, names_key: object,
              parsed: _Parsed) -> ObservedFlow:
    known = parsed.get(flow)
    if known is None or known[0] is not names_key:
        known = parsed[flow] = (names_key, flow.observed(names))
    return known[1]


class MirrorSnapshot(MirroredFlows):
    """One observation of a ``FlowTable``: its flows by cookie as they were (a copy of the
    index: each entry is an immutable tuple) and its journal up to then (a prefix of a
    list that is only appended to, or replaced)."""

    def __init__(self, table: FlowTable, names: Mapping[int, str] | None, names_key: object,
                 parsed: _Parsed) -> None:
        self._table = table
        self._names = names
        self._names_key = names_key
        self._parsed = parsed
        self._index = dict(table._by_cookie)
        self._journal = table._journal
        self._journal_start = table._journal_start
        self.version = table.version

    def installed(self, cookie: int) -> tuple[ObservedFlow, ...]:
        flows = self._index.get(cookie)
        if not flows:
            return ()
        return tuple(sorted(_observed(f, self._names, self._names_key, self._parsed)
                            for f in flows))

    def changed_since(self, earlier: MirroredFlows) -> frozenset[int] | None:
        if not isinstance(earlier, MirrorSnapshot) or earlier._table is not self._table \
                or earlier._names_key is not self._names_key:
            return None
        if not self._journal_start <= earlier.version <= self.version:
            return None
        start = self._journal_start
        return frozenset(self._journal[earlier.version - start:self.version - start])


class FlowTable:
    def __init__(self) -> None:
        self._groups: dict[_Key, dict[int, MonitoredFlow]] = {}  # -> cookie -> flow
        self._by_cookie: dict[int, tuple[MonitoredFlow, ...]] = {}
        self.consistent = True
        self.version = 0  # changes whenever the flows do: journal entries so far
        self._journal: list[int] = []  # the cookie each change touched, in order
        self._journal_start = 0  # the version before the first entry kept
        self._named: _Parsed = {}
        self._naming: object = None  # the last port naming, one object while it holds
        self._names_now: dict[int, str] = {}  # that naming, as a mapping
        # the last ``flows`` answer: (version, naming, flows, the cookies whose flows name
        # a port whose name changed since, so must be named again)
        self._answer: tuple[int, object, tuple[ObservedFlow, ...], frozenset[int]] | None = None

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def apply(self, event: FlowEvent) -> bool:
        """Replay one event; False (and ``consistent`` False from then on) if it does not
        fit what the table holds."""
        flow = event.flow
        key = (flow.table, flow.match)
        group = self._groups.setdefault(key, {})
        touched = [flow.cookie]
        if event.kind == "INITIAL" or (event.kind == "ADDED"
                                       and set(group) <= {flow.cookie}):
            group[flow.cookie] = flow
            self._index(key, flow.cookie, flow)
        elif event.kind == "ADDED":  # next to another flow of that match: replacing it?
            self.consistent = False
        elif event.kind == "DELETED":
            if group.pop(flow.cookie, None) is None:
                self.consistent = False
            self._index(key, flow.cookie, None)
        elif flow.cookie in group:  # MODIFIED: new actions
            group[flow.cookie] = flow
            self._index(key, flow.cookie, flow)
        elif len(group) == 1:  # MODIFIED: the one flow of that match, with a new cookie
            (before,) = group
            touched.append(before)
            group.clear()
            group[flow.cookie] = flow
            self._index(key, before, None)
            self._index(key, flow.cookie, flow)
        else:
            self.consistent = False
        if not group:
            del self._groups[key]
        self._journal.extend(touched)
        if len(self._journal) > max(JOURNAL_KEPT, 2 * len(self._by_cookie)):
            cut = len(self._journal) // 2  # a new list: snapshots keep the old one
            self._journal = self._journal[cut:]
            self._journal_start += cut
        self.version = self._journal_start + len(self._journal)
        return self.consistent

    def _index(self, key: _Key, cookie: int, flow: MonitoredFlow | None) -> None:
        """The flow of ``key`` with ``cookie`` is now ``flow`` (None: gone)."""
        same = tuple(f for f in self._by_cookie.get(cookie, ()) if (f.table, f.match) != key)
        if flow is not None:
            same += (flow,)
        if same:
            self._by_cookie[cookie] = same
        else:
            self._by_cookie.pop(cookie, None)

    def _naming_key(self, names: Mapping[int, str] | None) -> object:
        """One object per port naming while it holds (compared by identity).  When the
        naming changes (a port plugged or unplugged), the flows that name none of the ports
        whose names changed keep what they were named as: only the others are named again."""
        names_now = dict(names or {})
        names_key = tuple(sorted(names_now.items()))
        if names_key == self._naming:
            return self._naming
        before, before_key = self._names_now, self._naming
        self._naming, self._names_now = names_key, names_now
        renamed = {n for n in before.keys() | names_now.keys() if before.get(n) != names_now.get(n)}
        self._carry_over(before_key, names_key, renamed)
        return names_key

    def _carry_over(self, before_key: object, names_key: object, renamed: set[int]) -> None:
        touched = set()
        for group in self._groups.values():
            for flow in group.values():
                if not renamed.isdisjoint(flow.port_numbers):
                    touched.add(flow.cookie)
                    continue
                known = self._named.get(flow)
                if known is not None and known[0] is before_key:
                    self._named[flow] = (names_key, known[1])
        answer = self._answer
        if answer is not None and answer[1] is before_key:
            self._answer = (answer[0], names_key, answer[2], answer[3] | touched)

    def snapshot(self, names: Mapping[int, str] | None = None) -> MirrorSnapshot:
        """The table as it is now, by cookie, ports named by ``names``."""
        return MirrorSnapshot(self, names, self._naming_key(names), self._named)

    def flows(self, names: Mapping[int, str] | None = None) -> tuple[ObservedFlow, ...]:
        """Every flow, as ``parse_dump_flows`` orders them, ports named by ``names``
        (OpenFlow number -> port name).  Parsed once per flow and port naming; after a
        few changes, only the cookies the journal names are placed again (the flows sort
        by cookie first, so each cookie's flows are one run of the answer)."""
        names_key = self._naming_key(names)
        answer = self._answer
        if answer is not None and answer[1] is names_key:
            if answer[0] == self.version and not answer[3]:
                return answer[2]
            changed = self._changed_after(answer[0])
            if changed is not None and len(self._named) <= 2 * len(self._by_cookie) + 1000:
                return self._answer_again(answer[2], changed | answer[3], names, names_key)
        named: _Parsed = {}
        for group in self._groups.values():
            for flow in group.values():
                _observed(flow, names, names_key, self._named)
                named[flow] = self._named[flow]
        self._named = named  # forget flows that are gone
        found = tuple(sorted(observed for _, observed in named.values()))
        self._answer = (self.version, names_key, found, frozenset())
        return found

    def _changed_after(self, version: int) -> set[int] | None:
        """The cookies changed since ``version``; None if the journal no longer reaches
        back that far, or so much changed that sorting everything again is cheaper."""
        if version < self._journal_start or self.version - version > len(self._by_cookie) // 8:
            return None
        return set(self._journal[version - self._journal_start:])

    def _answer_again(self, before: tuple[ObservedFlow, ...], changed: set[int],
                      names: Mapping[int, str] | None, names_key: object
                      ) -> tuple[ObservedFlow, ...]:
        found = list(before)
        for cookie in changed:
            start = bisect_left(found, cookie, key=_cookie_of)
            end = bisect_right(found, cookie, lo=start, key=_cookie_of)
            found[start:end] = sorted(_observed(f, names, names_key, self._named)
                                      for f in self._by_cookie.get(cookie, ()))
        answer = tuple(found)
        self._answer = (self.version, names_key, answer, frozenset())
        return answer


def _cookie_of(flow: ObservedFlow) -> int:
    return flow.cookie
