"""br-tun folded into br-int (``DesiredConfig.tunnel_layout == "folded"``).

Neutron's layout gives the tunnels a bridge of their own; OVN puts its tunnel ports on the
integration bridge.  In the userspace datapath every bridge costs ovs-vswitchd's main loop
work on each iteration (its listening sockets, its ``ofproto_run``), whatever traffic it
carries: `bench/bench_bridges.py` measured 4-8 % more routed throughput with br-tun folded
into br-int by hand.  Folded, the same pieces are laid out on one switch bridge:

- every br-tun flow goes to br-int ``TUNNEL_TABLE_OFFSET`` tables up (br-tun's table 0 is
  br-int's table 200, its table 1 table 201, ...), its resubmits with it; match, actions
  otherwise and owner are unchanged, so the tables keep Neutron's meaning and numbers
  modulo the offset;
- every br-tun port (the VXLAN ports, ``patch-int``) is a br-int port with the dead VLAN as
  its tag, so that br-int's NORMAL action, which drops that VLAN, never sends a frame to
  one; one table-0 flow per such port (``PRIO_FOLDED_PORT``, the port's owner's) sends what
  it receives to br-tun's table 0, now table 200;
- ``patch-tun`` and ``patch-int`` are then peers on one bridge: what br-int's NORMAL action
  or a flow outputs to ``patch-tun`` enters br-int again at ``patch-int`` with its registers
  cleared, as it entered br-tun before, and what the tunnel tables output to ``patch-int``
  enters at ``patch-tun``, as it did.

Pure: ``fold_piece`` rewrites one piece; ``Assembly`` applies it to every piece it adds or
removes, so a full and an incremental computation fold alike.
"""

from __future__ import annotations

from dataclasses import replace

from dvr.agent.desired import names
from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.openflow import Action, Ct, Match, Resubmit
from dvr.agent.desired.state import Flow, OvsPort
from dvr.agent.desired.tables import IntTable
from dvr.agent.desired.vlans import DEAD_VLAN

TUNNEL_TABLE_OFFSET = 200  # br-tun's table N is br-int's table N + 200 (Neutron's br-tun: 0-22)
PRIO_FOLDED_PORT = 200  # br-int table 0: above every flow of br-int's own there


def folded_table(table: int) -> int:
    """The br-int table of br-tun's ``table``."""
    return table + TUNNEL_TABLE_OFFSET


def _folded_action(action: Action) -> Action:
    if isinstance(action, Resubmit):
        return Resubmit(folded_table(action.table))
    if isinstance(action, Ct) and action.table is not None:
        return replace(action, table=folded_table(action.table))
    return action


def folded_flow(flow: Flow) -> Flow:
    """A br-tun flow as br-int holds it."""
    return Flow(folded_table(flow.table), flow.priority, flow.match,
                tuple(_folded_action(a) for a in flow.actions), flow.owner)


def folded_port(port: OvsPort) -> OvsPort:
    """A br-tun port on br-int: on the dead VLAN, which br-int's NORMAL action drops."""
    return replace(port, tag=DEAD_VLAN)


def is_folded_port(port: OvsPort) -> bool:
    """Whether ``port``, on br-int, is one of br-tun's (a patch or VXLAN port on the dead
    VLAN: br-int's own patch port to br-tun is a trunk)."""
    return port.tag == DEAD_VLAN and port.type in ("patch", "vxlan")


def dispatch_flow(port: OvsPort, owner: str) -> Flow:
    """br-int table 0: what a folded port receives goes to br-tun's table 0."""
    return Flow(IntTable.LOCAL_SWITCHING, PRIO_FOLDED_PORT, Match(in_port=port.name),
                (Resubmit(folded_table(0)),), owner)


def port_owner(port: OvsPort, tunnel_bridge: str) -> str:
    """The owner of a folded port's dispatch flow: its tunnel's for a VXLAN port, br-tun's
    for the patch port."""
    remote = dict(port.options).get("remote_ip")
    return names.tunnel_owner(remote) if remote else names.bridge_owner(tunnel_bridge)


def fold_piece(flows: tuple[tuple[str, tuple[Flow, ...]], ...],
               ports: tuple[tuple[str, tuple[OvsPort, ...]], ...],
               config: DesiredConfig
               ) -> tuple[tuple[tuple[str, tuple[Flow, ...]], ...],
                          tuple[tuple[str, tuple[OvsPort, ...]], ...]]:
    """A piece's flows and ports by bridge, with br-tun's moved into br-int."""
    tunnel, integration = config.tunnel_bridge, config.integration_bridge
    if not any(bridge == tunnel for bridge, _ in (*flows, *ports)):
        return flows, ports
    out_flows: list[tuple[str, tuple[Flow, ...]]] = []
    for bridge, bridge_flows in flows:
        if bridge == tunnel:
            bridge_flows = tuple(folded_flow(f) for f in bridge_flows)
        out_flows.append((integration if bridge == tunnel else bridge, bridge_flows))
    out_ports: list[tuple[str, tuple[OvsPort, ...]]] = []
    for bridge, bridge_ports in ports:
        if bridge == tunnel:
            out_flows.append((integration, tuple(dispatch_flow(p, port_owner(p, tunnel))
                                                 for p in bridge_ports)))
            bridge_ports = tuple(folded_port(p) for p in bridge_ports)
        out_ports.append((integration if bridge == tunnel else bridge, bridge_ports))
    return tuple(out_flows), tuple(out_ports)
