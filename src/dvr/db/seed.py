"""Rows a fresh database starts with (written by the migrations that create their tables).

Neutron's template of the rules a new security group gets: egress anywhere over IPv4 and
IPv6 in every group; ingress from the group's own members (``PARENT``) in a project's
``default`` group only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from dvr.db.tables import default_security_group_rules

PARENT = "PARENT"  # remote_group_id of a template rule: the group the rule is copied into


def _template_rule(n: int, direction: str, ethertype: str, remote: str | None) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-00000000000{n}",
        "direction": direction,
        "ethertype": ethertype,
        "protocol": None,
        "port_range_min": None,
        "port_range_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": remote,
        "remote_address_group_id": None,
        "description": "",
        "used_in_default_sg": True,
        "used_in_non_default_sg": remote is None,
    }


DEFAULT_SECURITY_GROUP_RULES = (
    _template_rule(1, "egress", "IPv4", None),
    _template_rule(2, "egress", "IPv6", None),
    _template_rule(3, "ingress", "IPv4", PARENT),
    _template_rule(4, "ingress", "IPv6", PARENT),
)


def seed_default_security_group_rules(conn: Connection) -> None:
    conn.execute(insert(default_security_group_rules), list(DEFAULT_SECURITY_GROUP_RULES))
