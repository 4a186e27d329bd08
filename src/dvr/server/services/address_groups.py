"""Address groups (Neutron's ``address-group``): named sets of CIDRs that rules reference
as ``remote_address_group_id``.  A change wakes the hosts whose rules reference it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import address_groups, security_group_rules
from dvr.server.errors import BadRequestError, NotFoundError, conflict
from dvr.server.services.changes import firewall_change
from dvr.server.services.common import bump, new_id, standard_fields, standard_values
from dvr.server.services.firewall_queries import get_address_group
from dvr.server.tx import WriteTx


def render_address_group(row: Any) -> dict[str, Any]:
    fields = standard_fields(row)
    del fields["tags"]
    return {**fields, "name": row.name, "addresses": list(row.addresses or [])}


def show(conn: Connection, address_group_id: str) -> dict[str, Any]:
    return render_address_group(get_address_group(conn, address_group_id))


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    address_group_id = new_id()
    tx.conn.execute(
        insert(address_groups).values(
            id=address_group_id,
            name=body.get("name", ""),
            addresses=sorted(set(body.get("addresses", []))),
            **standard_values(tx.now, body.get("project_id"), body.get("description")),
        )
    )
    return show(tx.conn, address_group_id)


def update_address_group(tx: WriteTx, address_group_id: str, body: dict[str, Any]) -> dict:
    get_address_group(tx.conn, address_group_id)
    values = {k: body[k] for k in ("name", "description") if k in body}
    bump(tx.conn, address_groups, address_group_id, tx.now, **values)
    return show(tx.conn, address_group_id)


def delete_address_group(tx: WriteTx, address_group_id: str) -> None:
    get_address_group(tx.conn, address_group_id)
    query = select(security_group_rules.c.id).where(
        security_group_rules.c.remote_address_group_id == address_group_id
    )
    if tx.conn.execute(query).first() is not None:
        raise conflict(
            "AddressGroupInUse",
            f"Address group {address_group_id} is in use on one or more security group rules.",
        )
    tx.conn.execute(delete(address_groups).where(address_groups.c.id == address_group_id))


def add_addresses(tx: WriteTx, address_group_id: str, cidrs: list[str]) -> dict[str, Any]:
    current = set(get_address_group(tx.conn, address_group_id).addresses or [])
    present = sorted(set(cidrs) & current)
    if present:
        raise BadRequestError(
            f"Addresses {present} already exist in the address group {address_group_id}.",
            type_name="AddressesAlreadyExist",
        )
    return _set_addresses(tx, address_group_id, current | set(cidrs))


def remove_addresses(tx: WriteTx, address_group_id: str, cidrs: list[str]) -> dict[str, Any]:
    current = set(get_address_group(tx.conn, address_group_id).addresses or [])
    absent = sorted(set(cidrs) - current)
    if absent:
        raise NotFoundError(
            f"Addresses {absent} not found in the address group {address_group_id}.",
            type_name="AddressesNotFound",
        )
    return _set_addresses(tx, address_group_id, current - set(cidrs))


def _set_addresses(tx: WriteTx, address_group_id: str, cidrs: set[str]) -> dict[str, Any]:
    with firewall_change(tx, "address_group", address_group_id,
                         address_groups=[address_group_id]):
        bump(tx.conn, address_groups, address_group_id, tx.now, addresses=sorted(cidrs))
    return show(tx.conn, address_group_id)
