"""Parse the text of ``ovs-appctl ofproto/trace`` (OVS 3.1) into table lookups (pure).

The parts we use::

    Flow: icmp,in_port=4,vlan_tci=0x0000,dl_src=...

    bridge("br-int")
    ----------------
     0. priority 0, cookie 0x14bc215edffbe963
        resubmit(,60)
    60. priority 3, cookie 0x14bc215e45640249
        NORMAL
         -> no learned MAC for destination, flooding

    bridge("br-tun")
    ----------------
     0. in_port=1, priority 1, cookie 0x136e54c258546448
        resubmit(,1)
     1. No match.
        drop

    Final flow: unchanged
    Megaflow: recirc_id=0,eth,ip,in_port=4,...
    Datapath actions: push_vlan(vid=1,pcp=0),1,pop_vlan,3

A table line is ``<table>. <match>, priority <n>[, cookie <hex>]`` (no cookie when it is
0, no match text when the flow matches everything) or, on a table miss, ``<table>. No
match...`` or (OVS 3.1, secure fail mode) the internal rule it fell to, ``<table>.
reg0=0x2, priority 0`` with no cookie.  Lines
indented under it are its actions; ``->`` lines are details and ``>>`` lines errors.
Bridge sections can nest (a flood crossing a patch port is printed inside the lookup that
flooded), so the bridge of a lookup is the nearest enclosing ``bridge("...")`` header by
indentation.  Anything unrecognised is ignored, so extra detail lines in other OVS
versions do not break the parse.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvr.trace.steps import RealHit

# OVS's internal rules that a table miss falls to (ofproto-dpif: miss, no-packet-in,
# drop-fragments), printed with their own match by OVS 3.1: "1. reg0=0x2, priority 0"
_INTERNAL_MISS_MATCHES = frozenset({"reg0=0x1", "reg0=0x2", "reg0=0x3"})


@dataclass(frozen=True)
class RealTrace:
    flow: str
    hits: tuple[RealHit, ...]
    final_flow: str
    megaflow: str
    datapath_actions: str
    errors: tuple[str, ...]  # every ">>" line

    @property
    def parsed(self) -> bool:
        return bool(self.flow) or bool(self.hits)


@dataclass
class _Open:
    """The lookup whose action lines are being collected (local to one parse)."""

    bridge: str
    table: int
    indent: int
    match: str
    priority: int | None
    cookie: int | None
    miss: bool
    actions: list[str]
    notes: list[str]

    def close(self) -> RealHit:
        return RealHit(bridge=self.bridge, table=self.table, match=self.match,
                       priority=self.priority, cookie=self.cookie,
                       actions=tuple(self.actions), notes=tuple(self.notes), miss=self.miss)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_dashes(stripped: str) -> bool:
    return len(stripped) >= 3 and set(stripped) == {"-"}


def _bridge_header(stripped: str) -> str | None:
    """``bridge("br-int")`` -> ``br-int``."""
    if stripped.startswith('bridge("') and stripped.endswith('")'):
        name = stripped[len('bridge("'):-2]
        return name if name and '"' not in name else None
    return None


def _table_line(stripped: str) -> tuple[int, str] | None:
    """`` 0. <rest>`` -> (0, rest)."""
    number, dot, rest = stripped.partition(".")
    if not (dot and number.isdigit() and rest[:1].isspace()):
        return None
    return int(number), rest.strip()


@dataclass(frozen=True)
class _Hit:
    match: str
    priority: int
    cookie: int | None


def _hit(rest: str) -> _Hit | None:
    """``<match>, priority <n>[, cookie <hex>]`` (no match text for a match-all flow)."""
    if rest.startswith("priority "):
        match, tail = "", rest
    else:
        match, sep, tail = rest.rpartition(", priority ")
        if not sep:
            return None
        tail = "priority " + tail
    fields = [part.strip() for part in tail.split(",")]
    word, _, priority = fields[0].partition(" ")
    if word != "priority" or not priority.strip().isdigit():
        return None
    cookie = None
    if len(fields) == 2:
        word, _, value = fields[1].partition(" ")
        try:
            cookie = int(value.strip(), 0) if word == "cookie" else None
        except ValueError:
            return None
        if cookie is None:
            return None
    elif len(fields) > 2:
        return None
    return _Hit(match.strip(), int(priority), cookie)


def parse_ofproto_trace(text: str) -> RealTrace:
    hits: list[RealHit] = []
    errors: list[str] = []
    bridges: list[tuple[int, str]] = []  # (indent, name) of the enclosing bridge headers
    current: _Open | None = None
    flow = final_flow = megaflow = datapath = ""
    # conntrack recirculations: OVS resumes each in a section of its own whose header names
    # the bridge the trace *started* in; the lookup resumes in the bridge of its ct()
    resume_bridges: list[str] = []
    resuming = False

    def close() -> None:
        nonlocal current
        if current is not None:
            hits.append(current.close())
            current = None

    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or _is_dashes(stripped):
            continue
        if line.startswith("Flow:"):
            flow = flow or stripped.removeprefix("Flow:").strip()  # the first: the traced one
            continue
        if line.startswith("recirc("):
            close()
            resuming = True
            continue
        if line.startswith("Final flow:"):
            close()
            final_flow = stripped.removeprefix("Final flow:").strip()
            continue
        if line.startswith("Megaflow:"):
            megaflow = stripped.removeprefix("Megaflow:").strip()
            continue
        if line.startswith("Datapath actions:"):
            datapath = stripped.removeprefix("Datapath actions:").strip()
            continue
        header = _bridge_header(stripped)
        if header is not None:
            if resuming and resume_bridges:
                header = resume_bridges.pop(0)
            resuming = False
            close()
            indent = _indent(line)
            while bridges and bridges[-1][0] >= indent:
                bridges.pop()
            bridges.append((indent, header))
            continue
        table = _table_line(stripped)
        if table is not None:
            close()
            indent = _indent(line)
            while len(bridges) > 1 and bridges[-1][0] > indent:
                bridges.pop()
            bridge = bridges[-1][1] if bridges else ""
            number, rest = table
            hit = _hit(rest)
            if rest.lower().startswith("no match") or hit is None:
                current = _Open(bridge, number, indent, "", None, None, True,
                                [], [rest] if hit is None and not rest.lower().startswith(
                                    "no match") else [])
            elif hit.cookie is None and hit.match in _INTERNAL_MISS_MATCHES:
                current = _Open(bridge, number, indent, "", None, None, True, [], [])
            else:
                current = _Open(bridge, number, indent, hit.match, hit.priority, hit.cookie,
                                False, [], [])
            continue
        if stripped.startswith(">>"):
            errors.append(stripped.removeprefix(">>").strip())
        if current is None:
            continue
        if stripped.startswith(("->", ">>")):
            current.notes.append(stripped)
            if "will be resumed at table" in stripped:
                resume_bridges.append(current.bridge)
        else:
            current.actions.append(stripped)
    close()
    return RealTrace(flow=flow, hits=tuple(hits), final_flow=final_flow, megaflow=megaflow,
                     datapath_actions=datapath, errors=tuple(errors))
