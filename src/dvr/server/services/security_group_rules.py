"""Security group rules: create (Neutron's checks, duplicates refused), delete, render; and
the rules a new group gets from the default-rule template."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.seed import PARENT
from dvr.db.tables import default_security_group_rules, security_group_rules
from dvr.server.errors import conflict
from dvr.server.services.changes import firewall_change
from dvr.server.services.common import get_row, new_id, standard_fields, standard_values
from dvr.server.services.firewall_queries import get_address_group, get_security_group
from dvr.server.services.firewall_rules import MATCH_KEYS, check_rule, rule_key
from dvr.server.tx import WriteTx

rules = security_group_rules


def render_rule(row: Any) -> dict[str, Any]:
    fields = standard_fields(row)
    del fields["tags"]
    return {
        **fields,
        "security_group_id": row.security_group_id,
        **{key: getattr(row, key) for key in MATCH_KEYS},
    }


def show(conn: Connection, rule_id: str) -> dict[str, Any]:
    return render_rule(get_row(conn, rules, "security_group_rule", rule_id))


def rules_of_groups(conn: Connection, group_ids: list[str] | None) -> dict[str, list[dict]]:
    """group -> its rendered rules, oldest first (None: of every group)."""
    query = select(rules).order_by(rules.c.created_at, rules.c.id)
    if group_ids is not None:
        query = query.where(rules.c.security_group_id.in_(group_ids))
    result: dict[str, list[dict]] = {}
    for row in conn.execute(query):
        result.setdefault(row.security_group_id, []).append(render_rule(row))
    return result


def check_remotes(conn: Connection, rule: dict[str, Any]) -> None:
    """The groups and address groups a rule names exist (404 otherwise)."""
    if rule.get("remote_group_id") not in (None, PARENT):
        get_security_group(conn, rule["remote_group_id"])
    if rule.get("remote_address_group_id") is not None:
        get_address_group(conn, rule["remote_address_group_id"])


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    group = get_security_group(tx.conn, body["security_group_id"])
    check_remotes(tx.conn, body)
    rule = check_rule(body)
    existing = select(rules).where(rules.c.security_group_id == group.id)
    for row in tx.conn.execute(existing):
        if rule_key(row._mapping) == rule_key(rule):
            raise conflict(
                "SecurityGroupRuleExists",
                f"Security group rule already exists. Rule id is {row.id}.",
            )
    rule_id = body.get("id") or new_id()
    project = body.get("project_id") or group.project_id
    with firewall_change(tx, "security_group", group.id, groups=[group.id]):
        _insert(tx, rule_id, group.id, project, rule, body.get("description"))
    return show(tx.conn, rule_id)


def _insert(
    tx: WriteTx, rule_id: str, group_id: str, project: str, rule: dict, description: str | None
) -> None:
    tx.conn.execute(
        insert(rules).values(
            id=rule_id,
            security_group_id=group_id,
            **rule,
            **standard_values(tx.now, project, description),
        )
    )


def delete_rule(tx: WriteTx, rule_id: str) -> None:
    row = get_row(tx.conn, rules, "security_group_rule", rule_id)
    with firewall_change(tx, "security_group", row.security_group_id,
                         groups=[row.security_group_id]):
        tx.conn.execute(delete(rules).where(rules.c.id == rule_id))


def copy_template(tx: WriteTx, group_id: str, project: str, default_group: bool) -> None:
    """Give a new group the template's rules (``PARENT``: the group itself)."""
    template = default_security_group_rules
    used = template.c.used_in_default_sg if default_group else template.c.used_in_non_default_sg
    for row in tx.conn.execute(select(template).where(used.is_(True)).order_by(template.c.id)):
        rule = {key: getattr(row, key) for key in MATCH_KEYS}
        if rule["remote_group_id"] == PARENT:
            rule["remote_group_id"] = group_id
        _insert(tx, new_id(), group_id, project, rule, row.description)
