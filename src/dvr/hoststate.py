"""A host's desired state as its agent computes it, rebuilt from the server's data.

The server knows each host's HostView and what its agent last reported (plugged VIFs,
local VLANs and its bridge mappings, e.g. ``{"public": "br-ex"}``); running the agent's
own pure functions on those gives exactly the desired state the agent holds — without
touching the host.  Without a report of plugged VIFs, every VM/DHCP port of the host is
assumed plugged under Nova's tap name (``tap<port id[:11]>``) and the local VLANs are
recomputed.  Used by `dvr flows`, `dvr
trace` and the web view's trace.  Pure: asking a server for the inputs is
``dvr.cli.server_state.fetch_host_state``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.state import DesiredState
from dvr.model.hostview import LAYOUT_CHOICES, HostView, is_dvr_serviceable
from dvr.trace.hosts import default_vif_name


@dataclass(frozen=True)
class RebuiltHost:
    """One host's view and the desired state its agent computes from it."""

    view: HostView
    state: DesiredState
    plugged: Mapping[str, str]  # port id -> OVS port name: as reported, or assumed
    assumed: bool  # no report of plugged VIFs: ``plugged`` is ``assumed_vifs(view)``


def desired_state_from_reports(view: HostView, agent_state: Mapping[str, Any]) -> DesiredState:
    inputs = HostInputs(
        plugged=dict(agent_state.get("vifs") or {}),
        previous_local_vlans={k: int(v) for k, v in (agent_state.get("local_vlans") or {}).items()},
    )
    mappings = tuple(sorted((str(k), str(v))
                            for k, v in (agent_state.get("bridge_mappings") or {}).items()))
    layout = {name: agent_state.get(name) or default
              for name, (_, default) in LAYOUT_CHOICES.items()}
    config = DesiredConfig(agent_mode=view.agent_mode, bridge_mappings=mappings, **layout)
    return compute_desired_state(view, inputs, config)


def assumed_vifs(view: HostView) -> dict[str, str]:
    """Without a report: every VM/DHCP port of the host plugged under Nova's tap name."""
    return {p.id: default_vif_name(p.id) for p in view.ports if is_dvr_serviceable(p.device_owner)}


def rebuild_host(view: HostView, report: Mapping[str, Any] | None) -> RebuiltHost:
    """The host's desired state from its view and its agent's last report.

    ``report`` None, or its ``vifs`` None: the agent never said which VIFs are plugged, so
    they are assumed (``assumed_vifs``); its ``local_vlans``, if any, are still used.
    """
    report = report or {}
    vifs = report.get("vifs")
    plugged = assumed_vifs(view) if vifs is None else dict(vifs)
    state = desired_state_from_reports(view, {**report, "vifs": plugged})
    return RebuiltHost(view=view, state=state, plugged=plugged, assumed=vifs is None)


def assumed_note(hosts: Iterable[str]) -> str:
    """What the commands print (on stderr) for hosts whose VIFs were assumed."""
    return (f"note: no agent report for {', '.join(sorted(hosts))}: VM ports assumed plugged "
            "as tap<port id[:11]>, local VLANs recomputed")


def describe_owner(view: HostView, owner: str) -> str:
    """A human description of a flow owner ("<kind>:<id>") in the context of a host view."""
    kind, _, ident = owner.partition(":")
    if kind == "hostmac":
        mac = next((m.mac_address for m in view.peer_host_macs if m.host == ident), "?")
        return f"host MAC {mac} of {ident}"
    if kind == "network":
        net = view.network(ident)
        if net is not None and net.network_type in ("flat", "vlan"):
            segment = f"{net.network_type} on {net.physical_network}" + (
                f", VLAN {net.segmentation_id}" if net.segmentation_id is not None else "")
            return f"network {net.name} ({segment})"
        return f"network {net.name if net else ident} (VNI {net.segmentation_id if net else '?'})"
    if kind == "subnet":
        for router in view.routers:
            for interface in router.interfaces:
                if interface.subnet_id == ident:
                    return (f"DVR subnet {interface.cidr} of router {router.name or router.id} "
                            f"(gateway {interface.ip_address} {interface.mac_address})")
        return f"subnet {ident}"
    if kind == "port":
        port = next((p for p in view.ports if p.id == ident), None)
        if port is not None:
            ips = ", ".join(f.ip_address for f in port.fixed_ips)
            return f"port {port.device_id or port.id} ({port.mac_address} {ips})"
        return f"port {ident}"
    if kind == "router":
        router = view.router(ident)
        return f"router {router.name if router else ident}"
    if kind == "fastpath":
        router = view.router(ident)
        return (f"east/west fast path of router {router.name if router else ident}: routed "
                "in br-int, not in its qrouter- namespace")
    if kind == "firewall":
        net = view.network(ident)
        return (f"firewall clauses shared by the ports of network {net.name if net else ident} "
                "(protocols and ports, remote addresses)")
    if kind == "tunnel":
        return f"tunnel to {ident}"
    if kind == "bridge":
        return f"pipeline skeleton of {ident}"
    return owner
