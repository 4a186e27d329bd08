"""Security groups: create, update, delete, render; each project's ``default`` group,
created on first use with the template's rules; a port's groups (bindings).

A group change wakes the hosts that show it (``changes.firewall_change``); a port's
groups are part of the port's own change (``changes.port_change``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import default_security_groups, port_security_groups, security_groups
from dvr.server.errors import conflict
from dvr.server.services import security_group_rules
from dvr.server.services.changes import firewall_change
from dvr.server.services.common import (
    BULK_RENDER_THRESHOLD,
    NOAUTH_PROJECT,
    bump,
    new_id,
    standard_fields,
    standard_values,
)
from dvr.server.services.firewall_queries import get_security_group
from dvr.server.tx import WriteTx

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"
bindings = port_security_groups


# -- rendering -------------------------------------------------------------------------------
def render_groups(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    ids = None if len(rows) > BULK_RENDER_THRESHOLD else [r.id for r in rows]
    rules = security_group_rules.rules_of_groups(conn, ids)
    return [render_group(row, rules.get(row.id, [])) for row in rows]


def render_group(row: Any, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **standard_fields(row),
        "name": row.name,
        "stateful": row.stateful,
        "shared": False,
        "security_group_rules": rules,
    }


def show(conn: Connection, group_id: str) -> dict[str, Any]:
    return render_groups(conn, [get_security_group(conn, group_id)])[0]


# -- the default group -----------------------------------------------------------------------
def default_group_id(conn: Connection, project: str) -> str | None:
    query = select(default_security_groups.c.security_group_id).where(
        default_security_groups.c.project_id == project
    )
    return conn.execute(query).scalar()


def ensure_default_group(tx: WriteTx, project: str) -> str:
    """The project's ``default`` group, created now if it does not exist yet."""
    existing = default_group_id(tx.conn, project)
    if existing is not None:
        return existing
    group_id = _insert_group(tx, project, DEFAULT_NAME, DEFAULT_DESCRIPTION, True, default=True)
    tx.conn.execute(
        insert(default_security_groups).values(project_id=project, security_group_id=group_id)
    )
    return group_id


def _insert_group(
    tx: WriteTx, project: str, name: str, description: str | None, stateful: bool, default: bool
) -> str:
    group_id = new_id()
    tx.conn.execute(
        insert(security_groups).values(
            id=group_id, name=name, stateful=stateful,
            **standard_values(tx.now, project, description),
        )
    )
    security_group_rules.copy_template(tx, group_id, project, default)
    return group_id


def is_default(conn: Connection, group_id: str) -> bool:
    query = select(default_security_groups.c.project_id).where(
        default_security_groups.c.security_group_id == group_id
    )
    return conn.execute(query).first() is not None


# -- create, update, delete ------------------------------------------------------------------
def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    project = _project(body)
    ensure_default_group(tx, project)
    name = body.get("name", "")
    if name == DEFAULT_NAME:
        raise _default_exists()
    stateful = body.get("stateful", True)
    group_id = _insert_group(tx, project, name, body.get("description"), stateful, default=False)
    return show(tx.conn, group_id)


def _default_exists() -> Exception:
    return conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")


def _project(body: dict[str, Any]) -> str:
    project = body.get("project_id")
    return NOAUTH_PROJECT if project is None else project


def update_group(tx: WriteTx, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
    row = get_security_group(tx.conn, group_id)
    if is_default(tx.conn, group_id) and body.get("name", DEFAULT_NAME) != DEFAULT_NAME:
        raise conflict(
            "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed."
        )
    if body.get("name") == DEFAULT_NAME and not is_default(tx.conn, group_id):
        raise _default_exists()
    values = {k: body[k] for k in ("name", "description", "stateful") if k in body}
    if values.get("stateful", row.stateful) != row.stateful and member_ports(tx.conn, [group_id]):
        raise conflict(
            "SecurityGroupInUse",
            f"Security Group {group_id} in use: its stateful attribute cannot change while "
            "ports use it.",
        )
    with firewall_change(tx, "security_group", group_id, groups=[group_id]):
        bump(tx.conn, security_groups, group_id, tx.now, **values)
    return show(tx.conn, group_id)


def delete_group(tx: WriteTx, group_id: str) -> None:
    get_security_group(tx.conn, group_id)
    if is_default(tx.conn, group_id):
        raise conflict(
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        )
    if member_ports(tx.conn, [group_id]):
        raise conflict("SecurityGroupInUse", f"Security Group {group_id} in use.")
    # rules of other groups that reference it go with it (foreign key cascade)
    with firewall_change(tx, "security_group", group_id, remote_groups=[group_id]):
        tx.conn.execute(delete(security_groups).where(security_groups.c.id == group_id))


# -- a port's groups -------------------------------------------------------------------------
def member_ports(conn: Connection, group_ids: Collection[str]) -> list[str]:
    query = select(bindings.c.port_id).where(bindings.c.security_group_id.in_(list(group_ids)))
    return [row[0] for row in conn.execute(query)]


def set_port_groups(tx: WriteTx, port_id: str, group_ids: Collection[str]) -> None:
    """Replace a port's groups (they exist: ``existing_groups``)."""
    tx.conn.execute(delete(bindings).where(bindings.c.port_id == port_id))
    if group_ids:
        tx.conn.execute(
            insert(bindings),
            [{"port_id": port_id, "security_group_id": g} for g in sorted(group_ids)],
        )


def existing_groups(conn: Connection, group_ids: list[str]) -> list[str]:
    """The distinct ids, sorted, each checked to exist (404 SecurityGroupNotFound)."""
    unique = sorted(set(group_ids))
    for group_id in unique:
        get_security_group(conn, group_id)
    return unique
