"""Neutron's ``security-groups-default-rules``: the template of the rules a new group gets
(``used_in_default_sg``: a project's ``default`` group; ``used_in_non_default_sg``: any
other).  Changing it changes no existing group, so no host."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import default_security_group_rules
from dvr.server.errors import conflict
from dvr.server.services.common import get_row, new_id
from dvr.server.services.firewall_rules import MATCH_KEYS, check_rule, rule_key
from dvr.server.services.security_group_rules import check_remotes
from dvr.server.tx import WriteTx

template = default_security_group_rules


def render(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        **{key: getattr(row, key) for key in MATCH_KEYS},
        "description": row.description,
        "used_in_default_sg": row.used_in_default_sg,
        "used_in_non_default_sg": row.used_in_non_default_sg,
    }


def show(conn: Connection, rule_id: str) -> dict[str, Any]:
    return render(get_row(conn, template, "default_security_group_rule", rule_id))


def list_rules(conn: Connection) -> list[dict[str, Any]]:
    return [render(row) for row in conn.execute(select(template).order_by(template.c.id))]


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    check_remotes(tx.conn, body)
    rule = check_rule(body)
    for row in tx.conn.execute(select(template)):
        if rule_key(row._mapping) == rule_key(rule):
            raise conflict(
                "DefaultSecurityGroupRuleExists",
                f"Default Security group rule already exists. Rule id is {row.id}.",
            )
    rule_id = new_id()
    tx.conn.execute(
        insert(template).values(
            id=rule_id,
            **rule,
            description=body.get("description", ""),
            used_in_default_sg=body.get("used_in_default_sg", False),
            used_in_non_default_sg=body.get("used_in_non_default_sg", True),
        )
    )
    return show(tx.conn, rule_id)


def delete_rule(tx: WriteTx, rule_id: str) -> None:
    get_row(tx.conn, template, "default_security_group_rule", rule_id)
    tx.conn.execute(delete(template).where(template.c.id == rule_id))
