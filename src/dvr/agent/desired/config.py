"""Explicit inputs of the desired-state computation besides the HostView.

``DesiredConfig`` is the agent's local configuration that shapes the dataplane;
``HostInputs`` is the little it must *observe* on the host (which VIFs are plugged, which
local VLANs are already in use) so that the pure computation can stay pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dvr.model.hostview import AGENT_MODES, DEFAULT_EAST_WEST, EAST_WEST_MODES


@dataclass(frozen=True)
class DesiredConfig:
    """How this host's dataplane is laid out (names, datapath, mode)."""

    integration_bridge: str = "br-int"
    tunnel_bridge: str = "br-tun"
    datapath_type: str = "netdev"
    agent_mode: str = "dvr"
    # patch port on br-int towards br-tun, and its peer on br-tun (Neutron's defaults)
    int_peer_patch_port: str = "patch-tun"
    tun_peer_patch_port: str = "patch-int"
    # (physical network, bridge): external/provider networks on that physical network reach
    # br-int through that bridge (Neutron's ``bridge_mappings``, e.g. (("public", "br-ex"),))
    bridge_mappings: tuple[tuple[str, str], ...] = ()
    east_west: str = DEFAULT_EAST_WEST  # one of EAST_WEST_MODES

    @property
    def fast_path(self) -> bool:
        return self.east_west == "openflow"

    def bridge_for(self, physical_network: str | None) -> str | None:
        return next((b for p, b in self.bridge_mappings if p == physical_network), None)

    def __post_init__(self) -> None:
        if self.agent_mode not in AGENT_MODES:
            raise ValueError(f"agent_mode must be one of {AGENT_MODES}, not {self.agent_mode!r}")
        if self.east_west not in EAST_WEST_MODES:
            raise ValueError(f"east_west must be one of {EAST_WEST_MODES}, not {self.east_west!r}")
        if self.integration_bridge == self.tunnel_bridge:
            raise ValueError("integration and tunnel bridge must differ")
        for _, bridge in self.bridge_mappings:
            if bridge in (self.integration_bridge, self.tunnel_bridge):
                raise ValueError(f"a mapped bridge cannot be {bridge}")


@dataclass(frozen=True)
class HostInputs:
    """Observed facts the desired state depends on.

    - ``plugged``: port id -> OVS port name of the VIF found on the integration bridge by
      ``external_ids:iface-id`` (VM taps, DHCP ports...).  A port that is not plugged gets
      no port-specific flows (there is nothing to output to).
    - ``previous_local_vlans``: network id -> local VLAN currently in use (from the
      previous computation, or read back from br-int after an agent restart), so that
      allocations are stable and existing traffic is not disturbed.
    """

    plugged: Mapping[str, str] = field(default_factory=dict)
    previous_local_vlans: Mapping[str, int] = field(default_factory=dict)
