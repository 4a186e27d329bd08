"""Explicit inputs of the desired-state computation besides the HostView.

``DesiredConfig`` is the agent's local configuration that shapes the dataplane;
``HostInputs`` is the little it must *observe* on the host (which VIFs are plugged, which
local VLANs are already in use) so that the pure computation can stay pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dvr.model.hostview import (
    AGENT_MODES,
    DEFAULT_EAST_WEST,
    DEFAULT_TUNNEL_LAYOUT,
    LAYOUT_CHOICES,
)


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
    east_west: str = DEFAULT_EAST_WEST  # each of these two: one of its LAYOUT_CHOICES
    tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT

    @property
    def fast_path(self) -> bool:
        return self.east_west == "openflow"

    @property
    def folded(self) -> bool:
        """br-tun's tables and ports are on br-int (no br-tun bridge)."""
        return self.tunnel_layout == "folded"

    @property
    def switch_bridges(self) -> tuple[str, ...]:
        """The bridges the switch holds whatever the host runs: br-int, and br-tun unless
        it is folded into br-int."""
        if self.folded:
            return (self.integration_bridge,)
        return (self.integration_bridge, self.tunnel_bridge)

    @property
    def retired_bridges(self) -> tuple[str, ...]:
        """The agent's own bridges this layout does not use: br-tun when folded (left by
        the other layout on a host switched to this one)."""
        return (self.tunnel_bridge,) if self.folded else ()

    def bridge_for(self, physical_network: str | None) -> str | None:
        return next((b for p, b in self.bridge_mappings if p == physical_network), None)

    def __post_init__(self) -> None:
        if self.agent_mode not in AGENT_MODES:
            raise ValueError(f"agent_mode must be one of {AGENT_MODES}, not {self.agent_mode!r}")
        for name, (choices, _default) in LAYOUT_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, not {getattr(self, name)!r}")
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
