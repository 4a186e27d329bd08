"""Address scopes (Neutron's ``address-scope`` extension): create, update, delete, render.

A scope names a set of subnet pools of one IP version whose prefixes must not overlap
(checked when a pool joins it: ``subnetpools``).  dvr routes between scopes as it routes
within one: scopes are bookkeeping for clients, they change no host's view.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from dvr.db.tables import address_scopes, subnetpools
from dvr.server.errors import BadRequestError, conflict
from dvr.server.services.common import NOAUTH_PROJECT, new_id
from dvr.server.services.queries import get_address_scope
from dvr.server.tx import WriteTx


def render_address_scope(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "ip_version": row.ip_version,
        "shared": row.shared,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
    }


def show(conn: Connection, address_scope_id: str) -> dict[str, Any]:
    return render_address_scope(get_address_scope(conn, address_scope_id))


def list_address_scopes(conn: Connection) -> list[dict[str, Any]]:
    query = select(address_scopes).order_by(address_scopes.c.id)
    return [render_address_scope(row) for row in conn.execute(query)]


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    address_scope_id = new_id()
    tx.conn.execute(
        insert(address_scopes).values(
            id=address_scope_id,
            project_id=body.get("project_id", NOAUTH_PROJECT),
            name=body.get("name", ""),
            ip_version=body["ip_version"],
            shared=body.get("shared", False),
        )
    )
    return show(tx.conn, address_scope_id)


def update_address_scope(tx: WriteTx, address_scope_id: str, body: dict[str, Any]) -> dict:
    row = get_address_scope(tx.conn, address_scope_id)
    if row.shared and body.get("shared", True) is False:
        raise BadRequestError(
            f"Unable to update address scope {address_scope_id} : "
            "Shared address scope can't be unshared.",
            type_name="AddressScopeUpdateError",
        )
    values = {k: body[k] for k in ("name", "shared") if k in body}
    if values:
        tx.conn.execute(
            update(address_scopes).where(address_scopes.c.id == address_scope_id).values(**values)
        )
    return show(tx.conn, address_scope_id)


def delete_address_scope(tx: WriteTx, address_scope_id: str) -> None:
    get_address_scope(tx.conn, address_scope_id)
    query = select(subnetpools.c.id).where(subnetpools.c.address_scope_id == address_scope_id)
    if tx.conn.execute(query).first() is not None:
        raise conflict(
            "AddressScopeInUse",
            f"Unable to complete operation on address scope {address_scope_id}. There are one "
            "or more subnet pools in use on the address scope.",
        )
    tx.conn.execute(delete(address_scopes).where(address_scopes.c.id == address_scope_id))
