"""``ovs-ofctl`` text in and out (pure): bundle files from typed flows, and the one parser
of switch dumps (``dump-flows``) and flow monitor events (``monitor <bridge> watch:``),
built on ``ovs.flow.ofp``.

Port names and numbers: ``ovs-ofctl`` resolves port names itself by asking the switch for
its port descriptions on a second connection, which costs more than the command it serves
(~15 ms of the ~20 ms of a small bundle or dump here).  Given the bridge's ports (name ->
number, as OVSDB reports them), the driver binds the flows' port names to numbers when it
renders them and runs ovs-ofctl with ``--no-names``; a dump read with ``--no-names`` is
given the names back here, exactly where ovs-ofctl would do it (a number that no port has
any more stays a number).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

from ovs.flow.kv import KeyValue
from ovs.flow.ofp import OFPFlow

from dvr.agent.desired.openflow import (
    RESERVED_PORT_NAMES,
    UnboundPort,
    port_numbers,
    port_text,
    render_actions,
    render_flow,
    render_match,
)
from dvr.agent.desired.state import Flow
from dvr.agent.reconcile.commands import FlowBundle
from dvr.agent.reconcile.observed import ObservedFlow

DEFAULT_PRIORITY = 32768
_REPLY_HEADERS = ("OFPST_", "NXST_")


# --- bundles ------------------------------------------------------------------------------------


def bundle_lines(bundle: FlowBundle, port: Callable[[str], str] = port_text) -> list[str]:
    """The lines of one ``ovs-ofctl --bundle add-flows`` file: deletes by table and exact
    cookie, then adds.  Within a bundle the order is the order of the file.  ``port`` writes
    a port reference (by default its name; ``port_numbers`` binds names to numbers)."""
    lines = [f"delete table={ref.table},cookie={ref.cookie:#x}/-1" for ref in bundle.delete]
    lines += [f"add {render_flow(f.table, f.priority, f.cookie, f.match, f.actions, port)}"
              for f in bundle.add]
    return lines


def numbered_bundle(bundle: FlowBundle, numbers: Mapping[str, int]) -> list[str] | None:
    """``bundle_lines`` with every port written as its number; None if a flow names a port
    ``numbers`` does not have (then only ovs-ofctl can say what is wrong)."""
    try:
        return bundle_lines(bundle, port_numbers(numbers))
    except UnboundPort:
        return None


# --- dumps --------------------------------------------------------------------------------------


def parse_dump_flows(text: str, names: Mapping[int, str] | None = None
                     ) -> tuple[ObservedFlow, ...]:
    """Parse ``ovs-ofctl dump-flows`` output (any OpenFlow version, with or without names).

    ``names`` (OpenFlow number -> port name) gives a ``--no-names`` dump its port names
    back, as ``ovs-ofctl --names`` would print them."""
    flows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(_REPLY_HEADERS):
            continue
        flows.append(parse_flow_line(line, names or {}))
    return tuple(sorted(flows))


def parse_flow_line(line: str, names: Mapping[int, str] | None = None) -> ObservedFlow:
    head, sep, actions = line.partition("actions=")
    if head.rstrip().endswith(",") or not head.strip():
        # no match text at all: OVS omits the default priority, and OFPFlow takes the
        # last word before the actions for the match; give it that priority explicitly
        line = f"{head.rstrip()} priority={DEFAULT_PRIORITY} {sep}{actions}"
    flow = OFPFlow(line)
    info = flow.info
    naming = PortNaming.of(flow)
    return ObservedFlow(
        cookie=info.get("cookie", 0),
        table=info.get("table", 0),
        priority=flow.match.get("priority", DEFAULT_PRIORITY),
        n_packets=info.get("n_packets", 0),
        n_bytes=info.get("n_bytes", 0),
        text=naming.text(names or {}),
        ports=naming.ports(names or {}),
    )


# --- flow monitor events -------------------------------------------------------------------------

# events of ``ovs-ofctl monitor <bridge> watch:`` that change a flow table
FLOW_EVENTS = ("INITIAL", "ADDED", "DELETED", "MODIFIED")
_MATCH_ALL_PLACEHOLDER = "priority=0"  # OFPFlow needs a match; the monitor may print none
_CONJUNCTIONS_ONLY = re.compile(r"conjunction\(\d+,\d+/\d+\)(?:,conjunction\(\d+,\d+/\d+\))*")


@dataclass(frozen=True)
class MonitoredFlow:
    """A flow as a monitor event names it: no priority (``ovs-ofctl monitor`` never prints
    one), no counters.  ``match`` and ``actions`` are the switch's text (``--no-names``:
    ports as numbers); ``actions`` is "drop" for an empty action list."""

    table: int
    cookie: int
    match: str
    actions: str

    @cached_property
    def _conjunctions_only(self) -> bool:
        return _CONJUNCTIONS_ONLY.fullmatch(self.actions) is not None

    @cached_property
    def _naming(self) -> PortNaming:
        """The flow parsed once (the costly part): naming it again after a port came or
        went only splices names into its text."""
        actions = "drop" if self._conjunctions_only else self.actions
        return PortNaming.of(OFPFlow(f"table={self.table} cookie={self.cookie:#x} "
                                     f"{self.match or _MATCH_ALL_PLACEHOLDER} "
                                     f"actions={actions}"))

    @cached_property
    def port_numbers(self) -> frozenset[int]:
        """The port numbers it names (in_port, output): all that naming it depends on."""
        return frozenset(v for v in self._naming.references if isinstance(v, int))

    def observed(self, names: Mapping[int, str] | None = None) -> ObservedFlow:
        """The flow as ``parse_flow_line`` reports a dumped one, ``names`` giving ports
        their names; ``priority`` None (not known), counters 0.

        Actions that are only conjunctions (a firewall clause: dozens of them, and the
        parser's slowest part) name no port: the match is parsed alone and the actions
        kept as printed, the same answer several times sooner."""
        text = self._naming.text(names or {})
        if self._conjunctions_only:
            text = text.removesuffix("drop") + self.actions
        if not self.match:
            text = text.removeprefix(_MATCH_ALL_PLACEHOLDER).lstrip()
        return ObservedFlow(cookie=self.cookie, table=self.table, priority=None, text=text,
                            ports=self._naming.ports(names or {}))


def monitored_flow(flow: Flow, numbers: Mapping[str, int]) -> MonitoredFlow:
    """``flow`` as a monitor would name it once installed with the ports ``numbers``
    (modulo the switch's own spelling of fields): for tests and benchmarks of the mirror."""
    port = port_numbers(numbers)
    return MonitoredFlow(flow.table, flow.cookie, render_match(flow.match, port),
                         render_actions(flow.actions, port) or "drop")


@dataclass(frozen=True)
class FlowEvent:
    """``event=ADDED|INITIAL|DELETED|MODIFIED`` and the flow it names (for DELETED the
    flow that was removed; for MODIFIED the flow as it is now)."""

    kind: str
    flow: MonitoredFlow


@dataclass(frozen=True)
class BarrierReply:
    """The reply to a barrier the monitor sent (``ovs-appctl ofctl/barrier``): every flow
    change the switch made before it received the barrier was reported before this."""


@dataclass(frozen=True)
class UnexpectedLine:
    """Anything else a monitor printed that is not a reply header: a pause, an abbreviated
    event, an error.  After one the mirror cannot be trusted."""

    text: str


MonitorLine = FlowEvent | BarrierReply | UnexpectedLine | None  # None: nothing to do


def parse_monitor_line(line: str) -> MonitorLine:
    """One line of ``ovs-ofctl --no-names monitor <bridge> watch:`` (stdout and stderr)::

        OFPST_FLOW_MONITOR reply (OF1.5) (xid=0x0):
         event=ADDED table=2 cookie=0x22 in_port=1 actions=output:2
         event=DELETED reason=delete table=1 cookie=0x11 dl_dst=fa:16:3e:00:00:01
        OFPT_BARRIER_REPLY (OF1.5) (xid=0x5):
    """
    text = line.strip()
    if not text or "FLOW_MONITOR reply" in text:
        return None
    if "BARRIER_REPLY" in text:
        return BarrierReply()
    kind, _, rest = text.partition(" ")
    kind = kind.removeprefix("event=")
    if not text.startswith("event=") or kind not in FLOW_EVENTS:
        return UnexpectedLine(text)
    info, found, rest = rest.partition(" cookie=")
    cookie, _, body = rest.partition(" ")
    match, _, actions = body.partition("actions=")
    fields = dict(token.partition("=")[::2] for token in info.split())
    try:
        flow = MonitoredFlow(int(fields["table"]), int(cookie, 0), match.strip(),
                             actions.strip() or "drop")
    except (KeyError, ValueError):
        return UnexpectedLine(text)
    return FlowEvent(kind, flow) if found else UnexpectedLine(text)


def _port_value(kv: KeyValue) -> object:
    """The port of an ``in_port`` match or an ``output`` action (None for other keys)."""
    if kv.key == "in_port":
        return kv.value
    if kv.key == "output" and isinstance(kv.value, dict):
        return kv.value.get("port")
    return None


def _port_name(value: object, names: Mapping[int, str]) -> str | None:
    """A port reference as a name (the printed name unquoted, the name of a number), or
    the number as text when no port has it; None for reserved ports and field references."""
    if isinstance(value, int):
        return names.get(value, str(value))
    if not isinstance(value, str) or not value:
        return None
    name = _unquote(value)
    if name.upper() in RESERVED_PORT_NAMES or name.endswith("]"):
        return None
    return name


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


@dataclass(frozen=True)
class _Section:
    """A section (match or actions) of a parsed flow: its text and, last first, the spots
    where a port number stands (start, length, number)."""

    text: str
    spots: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, section) -> _Section:
        spots = []
        for kv in section.data:
            value = _port_value(kv)
            if isinstance(value, int) and kv.meta.vstring == str(value):
                spots.append((kv.meta.vpos, len(kv.meta.vstring), value))
        return cls(section.string, tuple(sorted(spots, reverse=True)))

    def named(self, names: Mapping[int, str]) -> str:
        """The text, every port number that belongs to a port of the bridge replaced by
        that port's printed name."""
        text = self.text
        for start, length, number in self.spots:
            if number in names:
                text = text[:start] + port_text(names[number]) + text[start + length:]
        return text


@dataclass(frozen=True)
class PortNaming:
    """What printing a parsed flow with port names needs, kept apart from the parse."""

    match: _Section | None
    actions: _Section | None
    references: tuple[object, ...]  # the ports of its in_port match and output actions

    @classmethod
    def of(cls, flow: OFPFlow) -> PortNaming:
        parts = {s.name: s for s in flow.sections}
        return cls(
            match=_Section.of(parts["match"]) if "match" in parts else None,
            actions=_Section.of(parts["actions"]) if "actions" in parts else None,
            references=tuple(_port_value(kv) for kv in [*flow.match_kv, *flow.actions_kv]),
        )

    def text(self, names: Mapping[int, str]) -> str:
        """``priority=..,match actions=..`` as ``ovs-ofctl --names dump-flows`` prints it."""
        match = self.match.named(names) if self.match is not None else ""
        actions = f"actions={self.actions.named(names)}" if self.actions is not None else ""
        return " ".join(p for p in (match, actions) if p)

    def ports(self, names: Mapping[int, str]) -> tuple[str, ...]:
        """The ports it names, sorted: by name where ``names`` has one."""
        return tuple(sorted({name for value in self.references
                             if (name := _port_name(value, names)) is not None}))
