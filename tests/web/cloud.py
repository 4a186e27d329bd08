"""A small two-host DVR cloud made through the API, for the web view's tests.

compute-1: blue-1 (blue 198.51.100.0/24)        compute-2: orange-1 (orange 203.0.113.0/24),
                                                           blue-2   (blue)
router r1 (distributed) joins blue and orange, so it is instantiated on both hosts.
Works with any client that has httpx's ``get/post/put`` (TestClient or httpx.Client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dvr.trace.hosts import default_vif_name

HOSTS = {"compute-1": "192.0.2.11", "compute-2": "192.0.2.12"}
VMS = (("blue-1", "blue", "compute-1"), ("orange-1", "orange", "compute-2"),
       ("blue-2", "blue", "compute-2"))
CIDRS = {"blue": "198.51.100.0/24", "orange": "203.0.113.0/24"}


@dataclass(frozen=True)
class Cloud:
    host_macs: dict[str, str]
    networks: dict[str, dict[str, Any]]  # name -> network
    subnets: dict[str, dict[str, Any]]  # network name -> subnet
    router: dict[str, Any]
    vms: dict[str, dict[str, Any]]  # VM name -> port

    def ip(self, vm: str) -> str:
        return self.vms[vm]["fixed_ips"][0]["ip_address"]


def _ok(response: Any) -> Any:
    assert response.status_code < 300, (response.status_code, response.text)
    return response.json() if response.content else None


def create_network(client: Any, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    network = _ok(client.post("/v2.0/networks", json={"network": {"name": name}}))["network"]
    subnet = _ok(client.post("/v2.0/subnets", json={"subnet": {
        "network_id": network["id"], "cidr": CIDRS[name], "ip_version": 4, "name": f"{name}-sub",
    }}))["subnet"]
    return network, subnet


def create_vm(client: Any, name: str, network_id: str, host: str,
              **attributes: Any) -> dict[str, Any]:
    """A VM's port; ``attributes`` go into the port as given (``security_groups``,
    ``port_security_enabled``...)."""
    return _ok(client.post("/v2.0/ports", json={"port": {
        "network_id": network_id, "name": name, "device_id": name,
        "device_owner": "compute:nova", "binding:host_id": host, **attributes,
    }}))["port"]


def create_group(client: Any, name: str, rules: list[dict[str, Any]] | None = None,
                 egress: bool = True) -> dict[str, Any]:
    """A security group with ``rules`` added; ``egress`` False removes the egress rules a new
    group starts with (then the group allows nothing at all)."""
    group = _ok(client.post("/v2.0/security-groups", json={"security_group": {
        "name": name}}))["security_group"]
    if not egress:
        for rule in group["security_group_rules"]:
            _ok(client.delete(f"/v2.0/security-group-rules/{rule['id']}"))
    for rule in rules or []:
        _ok(client.post("/v2.0/security-group-rules", json={"security_group_rule": {
            "security_group_id": group["id"], **rule}}))
    return _ok(client.get(f"/v2.0/security-groups/{group['id']}"))["security_group"]


def report_plugged(client: Any, host: str, ports: list[dict[str, Any]], revision: int) -> None:
    """What the host's agent would say: these VIFs are plugged and up, this revision applied."""
    _ok(client.post(f"/dvr/v1/hosts/{host}/heartbeat", json={
        "applied_revision": revision,
        "ports_up": [p["id"] for p in ports],
        "ports_down": [],
        "vifs": {p["id"]: default_vif_name(p["id"]) for p in ports},
        "local_vlans": {},
    }))


def register_host(client: Any, host: str, tunnel_ip: str, agent_mode: str = "dvr") -> str:
    """Register the host's agent and allocate its host MAC (returned)."""
    _ok(client.post("/dvr/v1/agents", json={
        "host": host, "agent_mode": agent_mode, "tunnel_ip": tunnel_ip, "datapath_type": "netdev",
    }))
    return _ok(client.post(f"/dvr/v1/hosts/{host}/host-mac"))["mac_address"]


def build_cloud(client: Any) -> Cloud:
    host_macs = {host: register_host(client, host, tunnel_ip) for host, tunnel_ip in HOSTS.items()}
    networks, subnets = {}, {}
    for name in CIDRS:
        networks[name], subnets[name] = create_network(client, name)
    router = _ok(client.post("/v2.0/routers", json={"router": {
        "name": "r1", "distributed": True}}))["router"]
    for subnet in subnets.values():
        _ok(client.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                       json={"subnet_id": subnet["id"]}))
    vms = {name: create_vm(client, name, networks[net]["id"], host) for name, net, host in VMS}
    revision = _ok(client.get("/dvr/v1/topology"))["revision"]
    for host in HOSTS:
        report_plugged(client, host, [p for p in vms.values() if p["binding:host_id"] == host],
                       revision)
    return Cloud(host_macs=host_macs, networks=networks, subnets=subnets, router=router, vms=vms)
