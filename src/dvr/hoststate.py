"""A host's desired state as its agent computes it, rebuilt from the server's data.

The server knows each host's HostView and what its agent last reported (plugged VIFs and
local VLANs); running the agent's own pure functions on those gives exactly the desired
state the agent holds — without touching the host.  Used by `dvr flows` and the tracer.
"""

from __future__ import annotations

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.state import DesiredState
from dvr.client import ServerClient
from dvr.model.hostview import HostView


def desired_state_from_reports(view: HostView, agent_state: dict) -> DesiredState:
    inputs = HostInputs(
        plugged=dict(agent_state.get("vifs") or {}),
        previous_local_vlans={k: int(v) for k, v in (agent_state.get("local_vlans") or {}).items()},
    )
    return compute_desired_state(view, inputs, DesiredConfig(agent_mode=view.agent_mode))


def fetch_host_state(client: ServerClient, host: str) -> tuple[HostView, DesiredState]:
    view = client.host_view(host)
    return view, desired_state_from_reports(view, client.agent_state(host))


def describe_owner(view: HostView, owner: str) -> str:
    """A human description of a flow owner ("<kind>:<id>") in the context of a host view."""
    kind, _, ident = owner.partition(":")
    if kind == "hostmac":
        mac = next((m.mac_address for m in view.peer_host_macs if m.host == ident), "?")
        return f"host MAC {mac} of {ident}"
    if kind == "network":
        net = view.network(ident)
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
    if kind == "tunnel":
        return f"tunnel to {ident}"
    if kind == "bridge":
        return f"pipeline skeleton of {ident}"
    return owner
