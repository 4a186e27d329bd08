"""How the lab protects its VMs: every VM is in the project's ``default`` group (group-mates
may reach it) and in ``demo-web`` (TCP 80 and ICMP from anywhere), plus the groups named
with ``--security-group``; ``--no-port-security`` turns the firewall off for a VM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dvr.client import ServerClient

DEFAULT_GROUP = "default"
DEMO_WEB = "demo-web"
DEMO_WEB_RULES: tuple[dict[str, Any], ...] = (
    {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
     "port_range_min": 80, "port_range_max": 80},
    {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"},
)
GROUPS_PATH = "/v2.0/security-groups"


@dataclass(frozen=True)
class VmSecurity:
    groups: tuple[str, ...] = ()  # names or ids of further groups
    port_security: bool = True

    @property
    def wanted_groups(self) -> tuple[str, ...]:
        """The groups the VM is in, by name or id, each once."""
        if not self.port_security:
            return ()
        return tuple(dict.fromkeys((DEFAULT_GROUP, DEMO_WEB, *self.groups)))


LAB_VM = VmSecurity()  # a VM as ``lab up`` and ``vm add`` make it without flags


def port_body(security: VmSecurity, group_ids: list[str]) -> dict[str, Any]:
    """The port attributes that say how the VM is protected."""
    return {"port_security_enabled": security.port_security, "security_groups": group_ids}


def find_group(client: ServerClient, name_or_id: str) -> str | None:
    """A group's id by id or by name (listing creates the project's default group)."""
    for group in client.get(GROUPS_PATH)["security_groups"]:
        if name_or_id in (group["id"], group["name"]):
            return group["id"]
    return None


def ensure_demo_web(client: ServerClient) -> str:
    existing = find_group(client, DEMO_WEB)
    if existing is not None:
        return existing
    group = client.request("POST", GROUPS_PATH, json={"security_group": {
        "name": DEMO_WEB, "description": "lab VMs: TCP 80 and ICMP from anywhere"}})
    group_id = group["security_group"]["id"]
    for rule in DEMO_WEB_RULES:
        client.request("POST", "/v2.0/security-group-rules",
                       json={"security_group_rule": {"security_group_id": group_id, **rule}})
    return group_id
