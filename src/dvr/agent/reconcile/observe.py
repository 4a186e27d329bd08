"""ObservedState: the part of a host's dataplane the agent looks at, and how it is read.

What the agent *owns* is policy and lives here (``Ownership``), not in the drivers:
namespaces named ``qrouter-``/``snat-``/``fip-``, OVS ports marked with the managed
external id, and every flow on the bridges of the desired state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.base import Drivers, LinuxScope
from dvr.agent.drivers.observed import (
    ObservedBridge,
    ObservedLink,
    ObservedNamespace,
    ObservedPort,
)

IFACE_ID = "iface-id"


@dataclass(frozen=True)
class Ownership:
    """Which objects the agent may remove when they are no longer desired."""

    namespace_prefixes: tuple[str, ...] = ("qrouter-", "snat-", "fip-")
    managed_port_key: str = "dvr-managed"  # in the interface's external_ids
    managed_port_value: str = "true"

    def owns_namespace(self, name: str) -> bool:
        return name.startswith(self.namespace_prefixes)

    def owns_port(self, port: ObservedPort) -> bool:
        return port.external_id(self.managed_port_key) == self.managed_port_value

    @property
    def managed_marker(self) -> tuple[str, str]:
        return (self.managed_port_key, self.managed_port_value)


DEFAULT_OWNERSHIP = Ownership()


@dataclass(frozen=True)
class ObservedState:
    bridges: tuple[ObservedBridge, ...] = ()
    namespaces: tuple[ObservedNamespace, ...] = ()
    host_links: tuple[ObservedLink, ...] = ()

    def bridge(self, name: str) -> ObservedBridge | None:
        return next((b for b in self.bridges if b.name == name), None)

    def namespace(self, name: str) -> ObservedNamespace | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def host_link(self, name: str) -> ObservedLink | None:
        return next((link for link in self.host_links if link.name == name), None)

    def find_port(self, name: str) -> tuple[str, ObservedPort] | None:
        """(bridge name, port) of the port called ``name`` on any observed bridge."""
        for bridge in self.bridges:
            port = bridge.port(name)
            if port is not None:
                return bridge.name, port
        return None

    def vif_ports(self, bridge: str = "br-int") -> dict[str, str]:
        """iface-id -> port name of the ports on ``bridge`` that carry an iface-id."""
        observed = self.bridge(bridge)
        if observed is None:
            return {}
        return {
            iface_id: port.name
            for port in observed.ports
            if (iface_id := port.external_id(IFACE_ID)) is not None
        }


def observation_scope(desired: DesiredState, ownership: Ownership) -> LinuxScope:
    peers = sorted({link.peer for ns in desired.namespaces for link in ns.links})
    sysctl_keys = sorted({key for ns in desired.namespaces for key, _ in ns.sysctls})
    return LinuxScope(
        namespace_prefixes=ownership.namespace_prefixes,
        namespaces=tuple(ns.name for ns in desired.namespaces),
        host_links=tuple(peers),
        sysctl_keys=tuple(sysctl_keys),
    )


def observe(
    drivers: Drivers, desired: DesiredState, ownership: Ownership = DEFAULT_OWNERSHIP
) -> ObservedState:
    """Read the bridges of ``desired``, the owned namespaces and the veth bridge ends.

    The switch and the kernel are read side by side (the switch's flows come from
    ``ovs-ofctl`` processes, so that thread mostly waits); the result is the same as
    reading one after the other."""
    names = [b.name for b in desired.bridges]
    switch: dict[str, object] = {}

    def read_switch() -> None:
        try:
            switch["bridges"] = drivers.ovs.observe(names)
        except BaseException as error:  # re-raised in the caller's thread
            switch["error"] = error

    reader = threading.Thread(target=read_switch, name="dvr-observe-ovs", daemon=True)
    reader.start()
    try:
        linux = drivers.linux.observe(observation_scope(desired, ownership))
    finally:
        reader.join()
    if "error" in switch:
        raise switch["error"]  # type: ignore[misc]
    return ObservedState(
        bridges=switch["bridges"],  # type: ignore[arg-type]
        namespaces=linux.namespaces, host_links=linux.host_links,
    )
