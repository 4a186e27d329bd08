"""``ovs-ofctl`` text in and out (pure): bundle files and ``dump-flows`` parsing."""

from __future__ import annotations

import re

from dvr.agent.drivers.observed import ObservedFlow
from dvr.agent.drivers.ops import FlowBundle

DEFAULT_PRIORITY = 32768

_FIELD = re.compile(r"\b(cookie|table|n_packets|n_bytes|priority)=(0x[0-9a-fA-F]+|\d+)")
_STATS = ("duration", "n_packets", "n_bytes", "idle_age", "hard_age", "idle_timeout",
          "hard_timeout", "reset_counts", "importance", "out_port", "out_group")


def bundle_lines(bundle: FlowBundle) -> list[str]:
    """The lines of one ``ovs-ofctl --bundle add-flows`` file: deletes by table and exact
    cookie, then adds.  Within a bundle the order is the order of the file."""
    lines = [f"delete table={ref.table},cookie={ref.cookie:#x}/-1" for ref in bundle.delete]
    lines += [f"add {flow.to_ofctl()}" for flow in bundle.add]
    return lines


def parse_dump_flows(text: str) -> tuple[ObservedFlow, ...]:
    """Parse ``ovs-ofctl dump-flows`` output (any OpenFlow version, with or without names)."""
    flows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("OFPST_FLOW", "NXST_FLOW", "OFPST_", "NXST_")):
            continue
        flows.append(parse_flow_line(line))
    return tuple(sorted(flows))


def parse_flow_line(line: str) -> ObservedFlow:
    fields: dict[str, int] = {}
    head = line.partition(" actions=")[0]
    for key, value in _FIELD.findall(head):
        if key not in fields:  # the first occurrence is the header's (not a match field)
            fields[key] = int(value, 0)
    return ObservedFlow(
        cookie=fields.get("cookie", 0),
        table=fields.get("table", 0),
        priority=fields.get("priority", DEFAULT_PRIORITY),
        n_packets=fields.get("n_packets", 0),
        n_bytes=fields.get("n_bytes", 0),
        text=_match_and_actions(line),
    )


def _match_and_actions(line: str) -> str:
    """The line without cookie/table and the statistics: ``priority=..,match actions=..``."""
    head, sep, actions = line.partition(" actions=")
    parts = [p.strip() for p in head.split(",")]
    kept = [p for p in parts
            if p and not p.startswith(("cookie=", "table=")) and p.split("=")[0] not in _STATS]
    return " ".join(part for part in (",".join(kept), f"actions={actions}" if sep else "")
                    if part)


# --- port names <-> OpenFlow port numbers ------------------------------------------------------
#
# ``ovs-ofctl`` resolves port names itself by asking the switch for its port descriptions
# on a second connection, which costs more than the command it serves (~15 ms of the
# ~20 ms of a small bundle or dump here).  Given the bridge's ports (name -> number, as
# OVSDB reports them), the driver does the same translation in-process and runs ovs-ofctl
# with ``--no-names``: port names become numbers on the way in and numbers become names on
# the way out, exactly where ovs-ofctl would do it.

_PORT_REF = re.compile(r'(in_port=|output:|output\(port=)("(?:[^"\\]|\\.)*"|[^",)\s]+)')
_RESERVED_PORTS = frozenset({"IN_PORT", "TABLE", "NORMAL", "FLOOD", "ALL", "CONTROLLER",
                             "LOCAL", "NONE", "ANY", "UNSET"})


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


def printed_port_name(name: str) -> str:
    """A port name as ``ovs-ofctl --names`` prints it: bare when it is a letter followed by
    letters and digits, double-quoted otherwise (``in_port="patch-tun"``, ``output:tap1``)."""
    if name[:1].isascii() and name[:1].isalpha() and name.isascii() and name.isalnum() \
            and name.upper() not in _RESERVED_PORTS:
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def ports_to_numbers(text: str, numbers: dict[str, int]) -> str | None:
    """``text`` with every port named in ``in_port=``/``output:`` replaced by its number;
    None if a name is not in ``numbers`` (then only ovs-ofctl can say what is wrong)."""
    unknown = False

    def number(match: re.Match) -> str:
        nonlocal unknown
        token = _unquote(match.group(2))
        if token.isdigit() or token.upper() in _RESERVED_PORTS:
            return match.group(0)
        if token not in numbers:
            unknown = True
            return match.group(0)
        return f"{match.group(1)}{numbers[token]}"

    translated = _PORT_REF.sub(number, text)
    return None if unknown else translated


def ports_to_names(text: str, names: dict[int, str]) -> str:
    """``text`` (printed with port numbers) with every number that belongs to a port of the
    bridge replaced by that port's printed name, as ``ovs-ofctl --names`` prints it."""

    def name(match: re.Match) -> str:
        token = match.group(2)
        if not token.isdigit() or int(token) not in names:
            return match.group(0)
        return f"{match.group(1)}{printed_port_name(names[int(token)])}"

    return _PORT_REF.sub(name, text)
