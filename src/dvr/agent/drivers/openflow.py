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
