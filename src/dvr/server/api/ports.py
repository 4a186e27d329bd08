"""/v2.0/ports"""

from __future__ import annotations

from typing import Any

from dvr.db.tables import ports
from dvr.server.api.common import Collection, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import cascades
from dvr.server.services import ports as service
from dvr.server.services.common import list_rows
from dvr.server.tx import WriteTx
from dvr.server.validate import (
    STRING_SCHEMA,
    accepts,
    nullable,
    to_address_pairs,
    to_bool,
    to_dict,
    to_fixed_ips,
    to_mac,
    to_str,
    to_str_or_none,
    to_uuid,
    to_uuid_list,
)

VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder")


@accepts({"enum": list(VNIC_TYPES)})
def _vnic_type(value: Any) -> str:
    if value not in VNIC_TYPES:
        raise ValueError(f"'{value}' is not in {list(VNIC_TYPES)}")
    return value


@accepts(nullable(STRING_SCHEMA))
def _host_id(value: Any) -> str:
    """The binding host; null unbinds (stored as "")."""
    return to_str_or_none(value) or ""


SPEC = ResourceSpec(
    singular="port",
    plural="ports",
    attrs=(
        Attr("name", to_str),
        Attr("description", to_str),
        Attr("network_id", to_uuid, put=False, required=True),
        Attr("admin_state_up", to_bool),
        Attr("mac_address", to_mac),
        Attr("fixed_ips", to_fixed_ips),
        Attr("device_id", to_str),
        Attr("device_owner", to_str),
        Attr("binding:host_id", _host_id),
        Attr("binding:profile", to_dict),
        Attr("binding:vnic_type", _vnic_type),
        Attr("allowed_address_pairs", to_address_pairs),
        Attr("security_groups", to_uuid_list),
        Attr("port_security_enabled", to_bool),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
    output_only=frozenset({"binding:vif_type", "binding:vif_details"}),
)

SQL_FILTERS = {
    "id": "id",
    "name": "name",
    "network_id": "network_id",
    "device_id": "device_id",
    "device_owner": "device_owner",
    "mac_address": "mac_address",
    "binding:host_id": "host",
}


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if k != "status"}
    return service.show(tx.conn, service.create(tx, body))


def update(tx: WriteTx, port_id: str, body: dict[str, Any]) -> dict[str, Any]:
    cascades.update_port(tx, port_id, body)
    return service.show(tx.conn, port_id)


COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.render_ports(
        tx.conn, list_rows(tx.conn, ports, *prefilter(ports, filters, SQL_FILTERS))
    ),
    show=lambda tx, port_id: service.show(tx.conn, port_id),
    create=create,
    update=update,
    delete=lambda tx, port_id: cascades.delete_port(tx, port_id),
)
